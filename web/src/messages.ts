// The UI messages the page keeps (the AI SDK's UIMessage with Courier's metadata and data parts),
// and how a stored turn from `getHistory` becomes the same messages a live answer builds.
import type { UIMessage } from 'ai';

export interface TurnMetadata {
  turnId?: string;
  conversationId?: string;
  /** The stored status: completed, failed, cancelled, interrupted (queued/streaming while live). */
  status?: string;
  stopReason?: string;
  usage?: { inputTokens: number; outputTokens: number } | null;
  /** Time to first token, as Courier defines it (docs/protocol.md): message accepted → first answer text. */
  timeToFirstTokenMs?: number | null;
  model?: string | null;
}

export interface ToolStatus {
  toolCallId: string;
  summary: string;
}

export type CourierMessage = UIMessage<TurnMetadata, { 'tool-status': ToolStatus }>;
export type CourierPart = CourierMessage['parts'][number];

export interface HistoryTool {
  toolCallId: string;
  toolName: string;
  input: unknown;
  state: 'output-available' | 'output-error' | 'input-available';
  output: unknown;
  errorText: string | null;
  textOffset: number;
  durationMs: number | null;
}

export interface HistoryTurn {
  turnId: string;
  status: string;
  userText: string;
  assistantText: string;
  reasoningText?: string;
  model: string | null;
  usage: { inputTokens: number; outputTokens: number } | null;
  createdAt: string;
  completedAt: string | null;
  timeToFirstTokenMs?: number | null;
  latencyMs?: number | null;
  tools?: HistoryTool[];
}

export const UNFINISHED = new Set(['queued', 'streaming']);

/** A stored turn as the question and the answer a live stream would have built: text and tool
 * cards in the order they happened (each tool call's `textOffset` splits the answer). */
export function turnMessages(turn: HistoryTurn): CourierMessage[] {
  const question: CourierMessage = {
    id: `${turn.turnId}:question`,
    role: 'user',
    parts: [{ type: 'text', text: turn.userText }],
  };
  const parts: CourierPart[] = [];
  if (turn.reasoningText) parts.push({ type: 'reasoning', text: turn.reasoningText, state: 'done' });
  // Offsets count code points, as Courier counts characters (an emoji is one).
  const answerChars = Array.from(turn.assistantText);
  const text = (from: number, to: number) => answerChars.slice(from, to).join('');
  let at = 0;
  for (const tool of [...(turn.tools ?? [])].sort((a, b) => a.textOffset - b.textOffset)) {
    const offset = Math.min(Math.max(tool.textOffset, at), answerChars.length);
    if (offset > at) parts.push({ type: 'text', text: text(at, offset), state: 'done' });
    at = offset;
    parts.push(toolPart(tool));
  }
  if (at < answerChars.length) parts.push({ type: 'text', text: text(at, answerChars.length), state: 'done' });
  const answer: CourierMessage = {
    id: turn.turnId,
    role: 'assistant',
    metadata: {
      turnId: turn.turnId,
      status: turn.status,
      usage: turn.usage,
      model: turn.model,
      timeToFirstTokenMs: turn.timeToFirstTokenMs ?? null,
    },
    parts,
  };
  return [question, answer];
}

function toolPart(tool: HistoryTool): CourierPart {
  const common = { type: `tool-${tool.toolName}`, toolCallId: tool.toolCallId, input: tool.input } as const;
  if (tool.state === 'output-available') return { ...common, state: 'output-available', output: tool.output } as CourierPart;
  if (tool.state === 'output-error') {
    return { ...common, state: 'output-error', errorText: tool.errorText ?? 'The tool failed.' } as CourierPart;
  }
  return { ...common, state: 'input-available' } as CourierPart;
}

export function textOf(message: CourierMessage): string {
  return message.parts.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

/** Characters as Courier counts them (code points), not UTF-16 units: 👋 is one. */
export function charCount(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}
