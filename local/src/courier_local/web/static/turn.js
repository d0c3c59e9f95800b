// One turn as the page sees it, folded from `chunk` and `snapshot` frames (docs/protocol.md):
// keep the highest attempt and a gap-free seq prefix within it, drop duplicates and older attempts,
// let a snapshot replace the text, and end on finish / abort / error. After an `error`, a later
// attempt of the same turn may still come (the queue retries a turn whose worker gave up during a
// database outage): it starts the turn over, the failed attempt's partial text discarded.
// The same rules as courier_local/chat_client.py's TurnView, which is unit-tested.
"use strict";

const TERMINAL = new Set(["completed", "failed", "interrupted", "cancelled"]);

class TurnView {
  constructor(turnId) {
    this.turnId = turnId;
    this.attempt = 0;
    this.lastSeq = -1;
    this.text = "";
    this.reasoning = ""; // the model's reasoning (extended thinking), never part of the answer
    this.model = null;
    this.tools = new Map(); // toolCallId -> {name, input, summary, output, done}
    this.ended = null; // {status, errorText, metadata}
    this.pending = new Map(); // seq -> part, waiting for a gap to fill
    this.errorEnded = false; // ended by an `error` chunk: a later attempt may reopen it
  }

  // Ended with an `error` that a later attempt could still replace.
  get mayRetry() {
    return Boolean(this.ended) && this.errorEnded;
  }

  // The stored turn is over: no later attempt will reopen this view.
  settle() {
    this.errorEnded = false;
  }

  // Returns true when something visible changed.
  apply(frame) {
    if (frame.turnId !== this.turnId) return false;
    if (this.ended) {
      if (!(this.errorEnded && frame.attempt > this.attempt)) return false;
      this.ended = null; // a later attempt of a turn that failed: it starts over (newAttempt)
    }
    if (frame.type === "chunk") return this.applyChunk(frame.attempt, frame.seq, frame.chunk);
    if (frame.type === "snapshot") return this.applySnapshot(frame);
    return false;
  }

  newAttempt(attempt) {
    this.errorEnded = false;
    this.attempt = attempt;
    this.lastSeq = -1;
    this.text = "";
    this.reasoning = "";
    this.tools.clear();
    this.pending.clear();
  }

  applyChunk(attempt, seq, part) {
    if (attempt < this.attempt) return false;
    let changed = false;
    if (attempt > this.attempt) { this.newAttempt(attempt); changed = true; }
    if (seq <= this.lastSeq || this.pending.has(seq)) return changed;
    this.pending.set(seq, part);
    return this.drain() || changed;
  }

  drain() {
    let changed = false;
    while (!this.ended && this.pending.has(this.lastSeq + 1)) {
      this.lastSeq += 1;
      const part = this.pending.get(this.lastSeq);
      this.pending.delete(this.lastSeq);
      this.applyPart(part);
      changed = true;
    }
    return changed;
  }

  applySnapshot(frame) {
    if (frame.attempt < this.attempt) return false;
    if (frame.attempt > this.attempt) this.newAttempt(frame.attempt);
    if (frame.seq >= this.lastSeq) {
      this.text = frame.text;
      this.lastSeq = frame.seq;
      for (const seq of [...this.pending.keys()]) if (seq <= frame.seq) this.pending.delete(seq);
      this.drain();
    }
    if (TERMINAL.has(frame.status) && !this.ended) {
      this.ended = { status: frame.status, errorText: frame.status === "failed" ? "The answer failed." : null };
    }
    return true;
  }

  applyPart(part) {
    switch (part.type) {
      case "start":
        this.model = part.messageMetadata ? part.messageMetadata.model : null;
        break;
      case "text-delta":
        this.text += part.delta;
        break;
      case "reasoning-delta":
        this.reasoning += part.delta;
        break;
      case "tool-input-available":
        this.tools.set(part.toolCallId, { name: part.toolName, input: part.input || {}, summary: null, output: null, done: false });
        break;
      case "data-tool-status": {
        const tool = this.tools.get(part.data.toolCallId);
        if (tool) tool.summary = part.data.summary;
        break;
      }
      case "tool-output-available": {
        const tool = this.tools.get(part.toolCallId);
        if (tool) { tool.output = part.output; tool.done = true; }
        break;
      }
      case "tool-output-error": {
        const tool = this.tools.get(part.toolCallId);
        if (tool) { tool.error = part.errorText || "The tool failed."; tool.done = true; }
        break;
      }
      case "finish":
        this.ended = { status: "completed", metadata: part.messageMetadata || {} };
        break;
      case "abort": // its reason is the stored status: cancelled, or interrupted (nobody listened)
        this.ended = { status: part.reason === "interrupted" ? "interrupted" : "cancelled" };
        break;
      case "error":
        this.ended = { status: "failed", errorText: part.errorText || "The answer failed." };
        this.errorEnded = true;
        break;
      default:
        break; // start-step, finish-step, text-start/end, reasoning-start/end: nothing to show
    }
  }
}

if (typeof module !== "undefined") module.exports = { TurnView };
