// The selected conversation: its messages (following new text only while the reader is at the
// bottom, with a "jump to latest" control otherwise), a visible queued state, and the message box.
import { useChat } from '@ai-sdk/react';
import { useEffect, useState } from 'react';
import { StickToBottom, useStickToBottomContext } from 'use-stick-to-bottom';
import type { ChatEntry } from './chats';
import { Composer } from './Composer';
import { Message } from './Message';

function JumpToLatest() {
  const { isAtBottom, scrollToBottom } = useStickToBottomContext();
  if (isAtBottom) return null;
  return (
    <button type="button" className="jump" data-testid="jump-to-latest" onClick={() => void scrollToBottom()}>
      ↓ Jump to latest
    </button>
  );
}

function Queued({ since }: { since: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const waited = Math.max(0, Math.round((now - since) / 1000));
  return (
    <div className="message assistant" data-testid="queued">
      <p className="muted working">
        Queued: waiting for a worker{waited >= 2 ? ` (${waited} s)` : ''}…
      </p>
    </div>
  );
}

export interface ConversationProps {
  entry: ChatEntry;
  draft: string;
  setDraft(text: string): void;
  refusal: string | null;
  online: boolean;
  maxMessageChars: number;
  onConversation(conversationId: string): void;
  onSent(text: string): void;
  onLoadEarlier(): Promise<void>;
}

export function Conversation({ entry, draft, setDraft, refusal, online, maxMessageChars, onConversation, onSent, onLoadEarlier }: ConversationProps) {
  const { messages, status, error, sendMessage, regenerate, stop } = useChat({ chat: entry.chat });
  const [sentAt, setSentAt] = useState(Date.now());
  const busy = status === 'submitted' || status === 'streaming';
  const last = messages.at(-1);
  const conversationId = messages.findLast((message) => message.metadata?.conversationId)?.metadata?.conversationId;
  // As soon as the answer's start names the conversation (the registry tells the page once).
  useEffect(() => {
    if (conversationId) onConversation(conversationId);
  }, [conversationId, onConversation]);

  const send = (text: string) => {
    setSentAt(Date.now());
    onSent(text);
    void sendMessage({ text });
  };

  return (
    <>
      <StickToBottom className="messages" resize="smooth" initial="instant" role="log" aria-label="Messages">
        <StickToBottom.Content className="messages-content" scrollClassName="messages-scroll" data-testid="messages">
          {entry.earlierCursor && <EarlierButton onLoad={onLoadEarlier} />}
          {!entry.loaded && <p className="muted empty">Loading…</p>}
          {entry.loaded && messages.length === 0 && (
            <p className="muted empty" data-testid="empty">
              Ask anything. Try “What time is it in Tokyo?” to see a tool at work.
            </p>
          )}
          {messages.map((message, index) => (
            <Message
              key={message.id}
              message={message}
              streaming={(busy || entry.resumePending) && index === messages.length - 1 && message.role === 'assistant'}
              isLast={message.role === 'user' ? index >= messages.length - 2 : index === messages.length - 1}
              error={index === messages.length - 1 && !entry.resumePending ? error?.message : undefined}
              canAct={!busy && online}
              maxMessageChars={maxMessageChars}
              onRegenerate={() => {
                setSentAt(Date.now());
                void regenerate();
              }}
              onEditAndResend={send}
            />
          ))}
          {status === 'submitted' && last?.role === 'user' && <Queued since={sentAt} />}
          {entry.resumePending && (
            <p className="muted working" data-testid="resuming">
              The rest of the answer follows once the connection is back…
            </p>
          )}
        </StickToBottom.Content>
        <JumpToLatest />
      </StickToBottom>
      <Composer
        draft={draft}
        setDraft={setDraft}
        refusal={refusal}
        busy={busy}
        disabled={!online || !entry.loaded}
        maxMessageChars={maxMessageChars}
        onSend={(text) => {
          setDraft('');
          send(text);
        }}
        onStop={() => void stop()}
      />
    </>
  );
}

function EarlierButton({ onLoad }: { onLoad(): Promise<void> }) {
  const [loading, setLoading] = useState(false);
  return (
    <button
      type="button"
      className="action earlier"
      disabled={loading}
      onClick={() => {
        setLoading(true);
        void onLoad().finally(() => setLoading(false));
      }}
    >
      {loading ? 'Loading…' : 'Show earlier messages'}
    </button>
  );
}
