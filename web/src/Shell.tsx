// The signed-in page: conversations (a drawer on small screens), the selected conversation, the
// connection's state, and a live region that tells screen readers when an answer has finished.
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { claimsOf, msUntilExpiry } from './auth';
import { ChatRegistry, type Refusal } from './chats';
import type { PageConfig } from './config';
import { CourierConnection, type Link } from './connection';
import { Conversation } from './Conversation';
import { textOf, type CourierMessage } from './messages';

export type SignOutReason = 'signed-out' | 'expired' | 'refused';

interface ConversationSummary {
  conversationId: string;
  title: string;
  updatedAt: string;
}

function chatIdFromHash(): string | null {
  const match = /^#\/c\/([\w-]{1,200})$/.exec(location.hash);
  return match ? match[1] : null;
}

const LINK_LABELS: Record<Link, string> = {
  connecting: 'connecting…',
  online: 'connected',
  reconnecting: 'reconnecting…',
  refused: 'refused',
  expired: 'signed out',
};

export function Shell({ config, token, onSignOut }: { config: PageConfig; token: string; onSignOut(reason: SignOutReason): void }) {
  const expired = useCallback(() => (msUntilExpiry(token) ?? 1) <= 0, [token]);
  const connection = useMemo(() => new CourierConnection(config.wsUrl, token, expired), [config.wsUrl, token, expired]);
  const [link, setLink] = useState<Link>(connection.link);
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [chatId, setChatId] = useState<string>(() => chatIdFromHash() ?? crypto.randomUUID());
  const [drawerOpen, setDrawerOpen] = useState(false);
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const [refusals, setRefusals] = useState<Record<string, string | null>>({});
  const [announcement, setAnnouncement] = useState('');
  // Chats sent from this page that the conversation list does not show yet (their first answer has
  // not started): listed at the top under their first message, as Courier will title them.
  const [unlisted, setUnlisted] = useState<{ chatId: string; title: string }[]>([]);
  const chatIdRef = useRef(chatId);
  chatIdRef.current = chatId;

  const refreshConversations = useCallback(async () => {
    try {
      const frame = await connection.request('listConversations', { limit: 50 });
      setConversations(frame.conversations as ConversationSummary[]);
    } catch {
      // Offline or refused: the list refreshes when the page is back online.
    }
  }, [connection]);

  const registry = useMemo(
    () =>
      new ChatRegistry(connection, {
        onAnswerEnded: (_chatId: string, message: CourierMessage | undefined, error?: string) => {
          void refreshConversations();
          if (error) setAnnouncement(`The answer failed: ${error}`);
          else if (message?.metadata?.status === 'cancelled') setAnnouncement('The answer was stopped.');
          else if (message?.metadata?.status === 'interrupted') setAnnouncement('The answer was interrupted.');
          else if (message?.role === 'assistant') setAnnouncement(`Courier answered: ${textOf(message).slice(0, 300)}`);
        },
        onRefused: (refusedChatId: string, refusal: Refusal) => {
          setDrafts((all) => ({ ...all, [refusedChatId]: refusal.text }));
          setRefusals((all) => ({ ...all, [refusedChatId]: refusal.reason }));
          setAnnouncement(`Not sent: ${refusal.reason}`);
        },
        onConversation: (namedChatId: string, conversationId: string) => {
          if (chatIdRef.current === namedChatId) {
            history.replaceState(null, '', `#/c/${conversationId}`);
            setChatId(conversationId);
          }
          void refreshConversations();
        },
      }),
    [connection, refreshConversations],
  );
  useSyncExternalStore(registry.subscribe, () => registry.version);

  useEffect(() => {
    const unwatch = connection.watch((next) => {
      setLink(next);
      if (next === 'online') {
        registry.online();
        void refreshConversations();
      } else if (next === 'reconnecting') {
        registry.connectionLost();
      } else if (next === 'refused' || next === 'expired') {
        onSignOut(next);
      }
    });
    connection.start();
    return () => {
      unwatch();
      connection.stop();
      registry.transport.close();
    };
  }, [connection, registry, refreshConversations, onSignOut]);

  // The heartbeat pings often only while an answer is expected.
  useEffect(() => {
    const timer = setInterval(() => connection.setBusy(registry.busy()), 250);
    return () => clearInterval(timer);
  }, [connection, registry]);

  // An expired token goes back to sign-in, once no answer is streaming.
  useEffect(() => {
    const left = msUntilExpiry(token);
    if (left === null) return;
    let timer: ReturnType<typeof setTimeout>;
    const check = () => {
      if (registry.busy()) timer = setTimeout(check, 2000);
      else onSignOut('expired');
    };
    timer = setTimeout(check, Math.max(0, Math.min(left, 2 ** 31 - 1)));
    return () => clearTimeout(timer);
  }, [token, registry, onSignOut]);

  useEffect(() => {
    const onHash = () => {
      const fromHash = chatIdFromHash();
      if (fromHash && fromHash !== chatIdRef.current) setChatId(fromHash);
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    if (chatIdFromHash() !== chatId) history.replaceState(null, '', `#/c/${chatId}`);
  }, [chatId]);

  const isNew = !chatIdFromHash() || chatId !== chatIdFromHash();
  const entry = registry.entry(chatId) ?? registry.open(chatId, { isNew });

  const select = (id: string) => {
    setDrawerOpen(false);
    if (id === chatId) return;
    history.pushState(null, '', `#/c/${id}`);
    setChatId(id);
  };

  const startNew = () => {
    const id = crypto.randomUUID();
    registry.open(id, { isNew: true });
    select(id);
  };

  const listed = (chatId: string) => conversations.some((c) => registry.entry(c.conversationId) === registry.entry(chatId));
  const pending = unlisted.filter((chat) => !listed(chat.chatId));
  const title =
    conversations.find((c) => registry.entry(c.conversationId) === entry)?.title ??
    pending.find((chat) => registry.entry(chat.chatId) === entry)?.title;
  const who = claimsOf(token).sub ?? 'unknown user';

  return (
    <div className="app" data-drawer={drawerOpen ? 'open' : 'closed'}>
      <a href="#message" className="skip-link">Skip to the message box</a>
      <aside className="sidebar" id="sidebar" aria-label="Conversations">
        <button type="button" className="primary wide" data-testid="new-conversation" onClick={startNew}>
          + New conversation
        </button>
        <nav className="conversations" data-testid="conversations">
          {pending.map((chat) => (
            <a
              key={chat.chatId}
              href={`#/c/${chat.chatId}`}
              className="conversation"
              aria-current={registry.entry(chat.chatId) === entry ? 'page' : undefined}
              data-testid="conversation"
              onClick={(event) => {
                event.preventDefault();
                select(chat.chatId);
              }}
            >
              {chat.title}
            </a>
          ))}
          {conversations.map((conversation) => (
            <a
              key={conversation.conversationId}
              href={`#/c/${conversation.conversationId}`}
              className="conversation"
              aria-current={registry.entry(conversation.conversationId) === entry ? 'page' : undefined}
              data-testid="conversation"
              onClick={(event) => {
                event.preventDefault();
                select(conversation.conversationId);
              }}
            >
              {conversation.title || 'Untitled'}
            </a>
          ))}
        </nav>
        <div className="who">
          <span className="muted small" data-testid="who">Signed in as {who}</span>
          <button type="button" className="link small" onClick={() => onSignOut('signed-out')}>
            Sign out
          </button>
        </div>
      </aside>
      <div className="backdrop" onClick={() => setDrawerOpen(false)} aria-hidden="true" />
      <main className="chat">
        <header className="chat-header">
          <button
            type="button"
            className="menu"
            aria-label="Conversations"
            aria-controls="sidebar"
            aria-expanded={drawerOpen}
            data-testid="menu"
            onClick={() => setDrawerOpen((open) => !open)}
          >
            ☰
          </button>
          <h1 className="title" data-testid="chat-title">{title ?? 'New conversation'}</h1>
          <span className={`pill pill-${link}`} data-testid="connection" role="status">
            {LINK_LABELS[link]}
          </span>
        </header>
        {link === 'reconnecting' && (
          <div className="banner" role="alert" data-testid="banner">
            Connection lost. Reconnecting… An answer in progress continues once the page is back.
          </div>
        )}
        <Conversation
          key={entry.chat.id}
          entry={entry}
          draft={drafts[entry.chat.id] ?? ''}
          setDraft={(text) => {
            setDrafts((all) => ({ ...all, [entry.chat.id]: text }));
            setRefusals((all) => (all[entry.chat.id] ? { ...all, [entry.chat.id]: null } : all));
          }}
          refusal={refusals[entry.chat.id] ?? null}
          online={link === 'online'}
          maxMessageChars={config.maxMessageChars}
          onConversation={(conversationId) => registry.named(entry.chat.id, conversationId)}
          onSent={(text) => {
            setRefusals((all) => ({ ...all, [entry.chat.id]: null }));
            const chatId = entry.chat.id;
            const firstLine = text.trim().split('\n')[0].slice(0, 80);
            setUnlisted((all) => (all.some((chat) => chat.chatId === chatId) ? all : [{ chatId, title: firstLine }, ...all]));
          }}
          onLoadEarlier={async () => void (await registry.loadHistory(entry.chat.id, { earlier: true }))}
        />
      </main>
      <div className="sr-only" aria-live="polite" data-testid="announcer">
        {announcement}
      </div>
    </div>
  );
}
