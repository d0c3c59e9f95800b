// The message box: grows with the draft, Enter sends and Shift+Enter starts a new line; a draft
// over the limit, or one Courier refused, stays in the box with the reason beside it.
import { useEffect, useRef } from 'react';
import { charCount } from './messages';

export interface ComposerProps {
  draft: string;
  setDraft(text: string): void;
  /** Why the last message was not taken (shown until the draft changes). */
  refusal: string | null;
  busy: boolean;
  disabled: boolean;
  maxMessageChars: number;
  onSend(text: string): void;
  onStop(): void;
}

export function Composer({ draft, setDraft, refusal, busy, disabled, maxMessageChars, onSend, onStop }: ComposerProps) {
  const box = useRef<HTMLTextAreaElement>(null);
  const count = charCount(draft);
  const over = count > maxMessageChars;
  const reason = over
    ? `This message is ${count.toLocaleString()} characters; Courier takes at most ${maxMessageChars.toLocaleString()}. Shorten it or split it.`
    : refusal;

  useEffect(() => {
    box.current?.focus();
  }, []);

  const send = () => {
    if (busy || disabled || over || !draft.trim()) return;
    onSend(draft);
  };

  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        send();
      }}
    >
      {reason && (
        <p className="error-text composer-reason" role="alert" data-testid="composer-reason" id="composer-reason">
          {reason}
        </p>
      )}
      <div className="composer-row">
        <textarea
          ref={box}
          id="message"
          rows={1}
          value={draft}
          aria-label="Message"
          aria-describedby={reason ? 'composer-reason' : undefined}
          aria-invalid={over || undefined}
          placeholder="Message Courier…"
          data-testid="message-input"
          onChange={(event) => setDraft(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
              event.preventDefault();
              send();
            }
          }}
        />
        {busy ? (
          <button type="button" className="stop" data-testid="stop" onClick={onStop} aria-label="Stop the answer">
            Stop
          </button>
        ) : (
          <button type="submit" className="primary" data-testid="send" disabled={disabled || over || !draft.trim()}>
            Send
          </button>
        )}
      </div>
      <p className="hint muted">Enter to send · Shift+Enter for a new line{count > maxMessageChars * 0.8 ? ` · ${count}/${maxMessageChars}` : ''}</p>
    </form>
  );
}
