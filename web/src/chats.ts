// Every conversation the page has opened keeps its own Chat (the AI SDK's state for one chat id),
// all sharing one WebSocketChatTransport: switching conversations only changes which Chat is shown,
// so an answer streaming in another conversation goes on in the background and is there on return.
import { Chat } from '@ai-sdk/react';
import { WebSocketChatTransport } from 'ai';
import type { CourierConnection } from './connection';
import { CourierError } from './connection';
import { UNFINISHED, textOf, turnMessages, type CourierMessage, type HistoryTurn } from './messages';

/** A refused message: its text goes back to the message box with the reason beside it. */
export interface Refusal {
  text: string;
  reason: string;
}

export interface ChatEvents {
  /** An answer ended (any way; `error` when it failed): refresh the conversation list, announce it. */
  onAnswerEnded(chatId: string, message: CourierMessage | undefined, error?: string): void;
  onRefused(chatId: string, refusal: Refusal): void;
  /** Courier named the chat's conversation (a new chat's id is not its conversation id). */
  onConversation(chatId: string, conversationId: string): void;
}

// The transport's own words for a socket that failed, and the worker's for a retried attempt
// (services/worker/src/courier_worker/streaming.py RETRY_NOTICE): both mean "resume the chat".
const NETWORK_ERROR = /^WebSocket chat (network connection|transport was closed)/;
const RETRY_NOTICE = 'resume the chat to follow it';
const HISTORY_PAGE = 50;
const HISTORY_RETRY_MS = 3000;

type TransportOptions = NonNullable<ConstructorParameters<typeof WebSocketChatTransport<CourierMessage>>[0]>;

export interface ChatEntry {
  chat: Chat<CourierMessage>;
  /** History is loaded (or the chat is new). */
  loaded: boolean;
  earlierCursor: string | null;
  /** The chat lost its request with the connection and resumes when the page is back online. */
  resumePending: boolean;
}

export class ChatRegistry {
  readonly transport: WebSocketChatTransport<CourierMessage>;
  private readonly entries = new Map<string, ChatEntry>();
  private readonly listeners = new Set<() => void>();
  /** Bumped when an entry's own fields change (the Chats notify their own changes). */
  version = 0;

  constructor(
    private readonly connection: CourierConnection,
    private readonly events: ChatEvents,
  ) {
    // The transport's socket tells the heartbeat when it hears from Courier: a streaming answer
    // needs no pings.
    class HeardWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener('message', () => connection.heard());
      }
    }
    this.transport = new WebSocketChatTransport<CourierMessage>({
      url: connection.url,
      protocols: connection.protocols,
      // The browser's WebSocket, which the SDK's structural type does not name exactly.
      webSocket: HeardWebSocket as unknown as TransportOptions['webSocket'],
      // Courier keeps the history: only the new message travels, so a long chat never builds a
      // frame over API Gateway's 32 KB.
      prepareSendMessagesRequest: ({ messages }) => ({ messages: messages.slice(-1) }),
    });
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private changed(): void {
    this.version += 1;
    this.listeners.forEach((listener) => listener());
  }

  entry(chatId: string): ChatEntry | undefined {
    return this.entries.get(chatId);
  }

  /** The chat for an id, made on first use (its history loads when the page is online). */
  open(chatId: string, { isNew = false } = {}): ChatEntry {
    const existing = this.entries.get(chatId);
    if (existing) return existing;
    const entry: ChatEntry = { chat: this.makeChat(chatId), loaded: isNew, earlierCursor: null, resumePending: false };
    this.entries.set(chatId, entry);
    if (!isNew) void this.loadHistory(chatId);
    return entry;
  }

  /** Courier named the chat's conversation (an answer's metadata, history): the same Chat is found
   * under that id too, and the page is told once. */
  named(chatId: string, conversationId: string): void {
    const entry = this.entries.get(chatId);
    if (!entry || conversationId === chatId || this.entries.has(conversationId)) return;
    this.entries.set(conversationId, entry);
    this.events.onConversation(chatId, conversationId);
  }

  chats(): Chat<CourierMessage>[] {
    return [...new Set([...this.entries.values()].map((entry) => entry.chat))];
  }

  busy(): boolean {
    return this.chats().some((chat) => chat.status === 'submitted' || chat.status === 'streaming');
  }

  /** The connection is gone: fail the transport's requests now (their socket may be silent, not
   * closed), so each chat resumes once the page is back online. */
  connectionLost(): void {
    for (const entry of new Set(this.entries.values())) {
      if (entry.chat.status === 'submitted' || entry.chat.status === 'streaming') entry.resumePending = true;
    }
    this.changed();
    this.transport.close();
  }

  /** Back online: resume what was cut, load what never loaded. */
  online(): void {
    for (const [chatId, entry] of this.entries) {
      if (entry.chat.id !== chatId) continue; // an alias
      if (!entry.loaded) void this.loadHistory(chatId);
      else if (entry.resumePending) void this.resume(entry);
    }
  }

  /** Loads the chat's stored turns into it. Answers the turns, `null` when Courier has no such
   * conversation (a new chat), `undefined` when it could not ask (offline: loaded when back). */
  async loadHistory(chatId: string, { earlier = false } = {}): Promise<HistoryTurn[] | null | undefined> {
    const entry = this.entries.get(chatId);
    if (!entry || this.connection.link !== 'online') return undefined;
    let frame: Record<string, unknown>;
    try {
      // By the chat id: Courier resolves it as it does in `send` (a chat started here is named
      // by the id the page gave it, before any answer told the conversation's own id).
      frame = await this.connection.request('getHistory', {
        conversationId: entry.chat.id,
        limit: HISTORY_PAGE,
        ...(earlier && entry.earlierCursor ? { before: entry.earlierCursor } : {}),
      });
    } catch (error) {
      if (error instanceof CourierError && (error.code === 'not_found' || error.code === 'bad_request')) {
        entry.loaded = true;
        this.changed();
        return null;
      }
      // Courier could not answer (its database blipped, it was busy): ask again shortly, so the
      // chat never stays "Loading…" while the page is online. Offline, `online()` asks again.
      if (!entry.loaded && !earlier) setTimeout(() => void this.loadHistory(chatId), HISTORY_RETRY_MS);
      return undefined;
    }
    this.named(entry.chat.id, frame.conversationId as string);
    const turns = frame.turns as HistoryTurn[];
    const last = turns.at(-1);
    const live = !earlier && last !== undefined && UNFINISHED.has(last.status);
    const stored = turns.flatMap((turn) => (turn === last && live ? turnMessages(turn).slice(0, 1) : turnMessages(turn)));
    entry.earlierCursor = (frame.nextCursor as string | null) ?? null;
    entry.chat.messages = earlier ? [...stored, ...entry.chat.messages] : stored;
    entry.loaded = true;
    this.changed();
    if (live && entry.chat.status === 'ready') await entry.chat.resumeStream();
    return turns;
  }

  private async resume(entry: ChatEntry): Promise<void> {
    entry.resumePending = false;
    this.changed();
    entry.chat.clearError();
    await entry.chat.resumeStream();
    // Nothing to resume: the answer ended while the page was away, or the message never arrived.
    // History says which.
    const last = entry.chat.lastMessage;
    if (last?.role === 'user') await this.reconcile(entry);
    // Part of the answer was shown, and it ended while the page was away: history has all of it.
    else if (last?.role === 'assistant' && !last.metadata?.status && entry.chat.status === 'ready') await this.loadHistory(entry.chat.id);
  }

  /** The stored turns replace what the page holds; a question Courier never stored goes back to
   * the message box. */
  private async reconcile(entry: ChatEntry): Promise<void> {
    const unsent = entry.chat.lastMessage;
    const turns = await this.loadHistory(entry.chat.id);
    if (!unsent || turns === undefined) return; // offline again: resumed when back
    if (turns?.at(-1)?.userText === textOf(unsent)) return; // Courier has it: history shows it
    entry.chat.messages = entry.chat.messages.filter((message) => message !== unsent);
    this.events.onRefused(entry.chat.id, {
      text: textOf(unsent),
      reason: 'The connection dropped before Courier took this message. Send it again.',
    });
  }

  private makeChat(chatId: string): Chat<CourierMessage> {
    const chat: Chat<CourierMessage> = new Chat<CourierMessage>({
      id: chatId,
      transport: this.transport,
      onFinish: ({ message, isAbort, isError }) => {
        // Stopped here: Courier stores the turn cancelled; the page says so without waiting for it.
        if (isAbort) {
          message = { ...message, metadata: { ...message.metadata, status: 'cancelled' } };
          chat.messages = chat.messages.map((each) => (each.id === message.id ? message : each));
        }
        if (message.metadata?.conversationId) this.named(chatId, message.metadata.conversationId);
        if (!isError) this.events.onAnswerEnded(chatId, message); // a failure: `failed` says it
      },
      onError: (error) => this.failed(chatId, error),
    });
    return chat;
  }

  private failed(chatId: string, error: Error): void {
    const entry = this.entries.get(chatId);
    if (!entry) return;
    const chat = entry.chat;
    if (NETWORK_ERROR.test(error.message) || error.message.includes(RETRY_NOTICE)) {
      entry.resumePending = true;
      this.changed();
      if (this.connection.link === 'online') void this.resume(entry);
      return;
    }
    const last = chat.lastMessage;
    if (last?.role === 'user') {
      // Refused before any answer started (too long, too fast, Courier unavailable): the message
      // was not taken, so it leaves the conversation and goes back to the message box.
      chat.messages = chat.messages.slice(0, -1);
      chat.clearError();
      this.events.onRefused(chatId, { text: textOf(last), reason: error.message });
      return;
    }
    this.events.onAnswerEnded(chatId, last, error.message);
  }
}
