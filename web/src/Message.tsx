// One message: the question, or the answer's parts in the order they streamed (reasoning, text,
// tool cards), its ending and timings, and its actions (copy, regenerate, edit and resend).
import { code } from '@streamdown/code';
import { useEffect, useState } from 'react';
import { Streamdown } from 'streamdown';
import { charCount, textOf, type CourierMessage, type CourierPart, type ToolStatus } from './messages';

const plugins = { code };

interface ToolPart {
  type: string;
  toolCallId: string;
  state: string;
  input?: unknown;
  output?: unknown;
  errorText?: string;
}

function isToolPart(part: CourierPart): part is CourierPart & ToolPart {
  return part.type.startsWith('tool-') || part.type === 'dynamic-tool';
}

function toolName(part: ToolPart & { toolName?: string }): string {
  return part.type === 'dynamic-tool' ? (part.toolName ?? 'tool') : part.type.slice('tool-'.length);
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    if (!copied) return;
    const timer = setTimeout(() => setCopied(false), 1500);
    return () => clearTimeout(timer);
  }, [copied]);
  return (
    <button
      type="button"
      className="action"
      aria-label={label}
      data-testid="copy-message"
      onClick={() => void navigator.clipboard.writeText(text).then(() => setCopied(true), () => undefined)}
    >
      {copied ? 'Copied' : 'Copy'}
    </button>
  );
}

function ToolCard({ part, status }: { part: ToolPart; status?: ToolStatus }) {
  const name = toolName(part);
  const failed = part.state === 'output-error';
  const done = part.state === 'output-available';
  const label = failed ? 'failed' : done ? 'done' : 'running';
  return (
    <details className={`tool-card tool-${label}`} data-testid="tool-card" data-state={label}>
      <summary>
        <span className="tool-icon" aria-hidden="true">{failed ? '✗' : done ? '✓' : '⋯'}</span>
        <span className="tool-name">{name}</span>
        <span className="tool-summary">
          {failed ? `failed: ${part.errorText ?? 'the tool failed'}` : done ? 'done' : (status?.summary ?? 'running…')}
        </span>
      </summary>
      <div className="tool-body">
        <div className="tool-label">Input</div>
        <pre>{JSON.stringify(part.input ?? {}, null, 2)}</pre>
        {done && (
          <>
            <div className="tool-label">Output</div>
            <pre>{typeof part.output === 'string' ? part.output : JSON.stringify(part.output, null, 2)}</pre>
          </>
        )}
      </div>
    </details>
  );
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

const ENDINGS: Record<string, string> = {
  cancelled: 'Stopped',
  interrupted: 'Interrupted',
  failed: 'Failed',
};

export interface MessageProps {
  message: CourierMessage;
  streaming: boolean;
  isLast: boolean;
  error?: string;
  canAct: boolean;
  maxMessageChars: number;
  onRegenerate(): void;
  onEditAndResend(text: string): void;
}

export function Message({ message, streaming, isLast, error, canAct, maxMessageChars, onRegenerate, onEditAndResend }: MessageProps) {
  const [editing, setEditing] = useState<string | null>(null);
  const text = textOf(message);
  if (message.role === 'user') {
    if (editing !== null) {
      const over = charCount(editing) > maxMessageChars;
      return (
        <div className="message user" data-testid="user-message">
          <form
            className="edit"
            onSubmit={(event) => {
              event.preventDefault();
              if (!editing.trim() || over) return;
              onEditAndResend(editing);
              setEditing(null);
            }}
          >
            <textarea aria-label="Edit message" value={editing} onChange={(event) => setEditing(event.target.value)} autoFocus />
            {over && <p className="error-text">The message is over {maxMessageChars} characters.</p>}
            <div className="actions">
              <button type="button" className="action" onClick={() => setEditing(null)}>Cancel</button>
              <button type="submit" className="primary small" data-testid="resend">Send</button>
            </div>
          </form>
        </div>
      );
    }
    return (
      <div className="message user" data-testid="user-message">
        <div className="bubble">{text}</div>
        <div className="actions">
          <CopyButton text={text} label="Copy message" />
          {isLast && canAct && (
            <button type="button" className="action" data-testid="edit-message" onClick={() => setEditing(text)}>Edit</button>
          )}
        </div>
      </div>
    );
  }

  const statuses = new Map<string, ToolStatus>();
  for (const part of message.parts) if (part.type === 'data-tool-status') statuses.set(part.data.toolCallId, part.data);
  const meta = message.metadata ?? {};
  const ending = meta.status ? ENDINGS[meta.status] : undefined;
  const lastTextIndex = message.parts.findLastIndex((part) => part.type === 'text');
  const figures = [
    meta.timeToFirstTokenMs != null && `first token ${seconds(meta.timeToFirstTokenMs)}`,
    meta.usage && `${meta.usage.outputTokens} tokens`,
    meta.model,
  ].filter(Boolean);
  const empty = message.parts.every((part) => part.type === 'step-start' || part.type === 'data-tool-status');

  return (
    <div className="message assistant" data-testid="assistant-message" data-turn-id={meta.turnId} data-status={streaming ? 'streaming' : (meta.status ?? '')}>
      {empty && streaming && <p className="muted working" data-testid="working">Working…</p>}
      {message.parts.map((part, index) => {
        if (part.type === 'text') {
          return (
            <div className="answer" key={index} data-testid="answer-text">
              <Streamdown plugins={plugins} isAnimating={streaming && index === lastTextIndex} shikiTheme={['github-light', 'github-dark']}>
                {part.text}
              </Streamdown>
            </div>
          );
        }
        if (part.type === 'reasoning') {
          return (
            <details className="reasoning" key={index} data-testid="reasoning">
              <summary>{streaming && part.state === 'streaming' ? 'Thinking…' : 'Thought'}</summary>
              <p>{part.text}</p>
            </details>
          );
        }
        if (isToolPart(part)) return <ToolCard key={part.toolCallId} part={part} status={statuses.get(part.toolCallId)} />;
        return null;
      })}
      {ending && !streaming && (
        <p className={`ending ending-${meta.status}`} data-testid="ending">
          {ending}
          {meta.status === 'failed' && error ? `: ${error}` : ''}
        </p>
      )}
      {!ending && error && !streaming && <p className="ending ending-failed" data-testid="ending">Failed: {error}</p>}
      {!streaming && (
        <div className="actions">
          {figures.length > 0 && <span className="figures" data-testid="figures">{figures.join(' · ')}</span>}
          <CopyButton text={text} label="Copy answer" />
          {isLast && canAct && (
            <button type="button" className="action" data-testid="regenerate" onClick={onRegenerate}>Regenerate</button>
          )}
        </div>
      )}
    </div>
  );
}
