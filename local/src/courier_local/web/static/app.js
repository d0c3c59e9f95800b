// Courier's chat page. It speaks only the public protocol (docs/protocol.md) over one WebSocket:
// subprotocols ["courier.v1", "bearer.<jwt>"], JSON frames routed by `action`.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "courier.token";
// The protocol's limits (docs/protocol.md): a message of MAX_MESSAGE_CHARS characters fits one
// frame in any encoding, and no frame this page sends is over FRAME_BUDGET_BYTES, so API Gateway
// never closes the socket over one (it does, with 1009, for a frame over 32 KB).
const MAX_MESSAGE_CHARS = 5000;
const FRAME_BUDGET_BYTES = 32000;
const CLOSE_MESSAGE_TOO_BIG = 1009;
const CLOSE_INVALID_DATA = 1007;
// After an `error`, how long a turn the server still holds open is given to send its next attempt,
// and how often to ask again while the server cannot say (its database is away).
const RETRY_WAIT_MS = 60000;
const STATUS_POLL_MS = 2000;

const PLAIN_ERRORS = {
  rate_limited: "You are sending messages too quickly. Wait a few seconds and try again.",
  too_large: "That message is too long. Shorten it and try again.",
  not_found: "That conversation or answer does not exist, or is not yours.",
  forbidden: "That conversation or answer does not exist, or is not yours.",
  unauthorized: "Your sign-in is no longer valid. Sign in again.",
  internal: "Something went wrong on the server. Try again in a moment.",
};

const state = {
  wsUrl: null,
  devTokens: false,
  token: null,
  ws: null,
  opened: false, // this token has had an open socket at least once
  reconnectDelay: 500,
  reconnectFailures: 0,
  reconnectTimer: null,
  conversationId: null,
  conversations: [],
  active: null, // the turn being sent or streamed: {clientMessageId, text, conversationId, view, el, stopRequested, retryTimer}
  early: [], // chunks that arrived before their turn's ack
};

// ---------------------------------------------------------------- start-up and sign-in

async function init() {
  let config = {};
  try {
    const response = await fetch("dev/config");
    if (response.ok) config = await response.json();
  } catch (_) { /* not served by the local stack: derive the URL below */ }
  const params = new URLSearchParams(location.search);
  state.wsUrl = params.get("ws") || config.wsUrl || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
  state.devTokens = Boolean(config.devTokens);
  $("dev-signin").hidden = !state.devTokens;
  state.conversationId = conversationFromHash();
  const saved = localStorage.getItem(TOKEN_KEY);
  if (saved) startApp(saved);
  else showSignin("");
}

function showSignin(error) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = error;
}

async function signInWithDevToken() {
  const query = new URLSearchParams({ user: $("dev-user").value.trim() || "dev-user", tenant: $("dev-tenant").value.trim() || "dev" });
  try {
    const response = await fetch(`dev/token?${query}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    startApp((await response.json()).token);
  } catch (error) {
    showSignin(`Could not get a dev token from the local stack (${error.message}). Is it still running?`);
  }
}

function startApp(token) {
  state.token = token.trim();
  state.opened = false;
  localStorage.setItem(TOKEN_KEY, state.token);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").textContent = describeToken(state.token);
  renderEmptyConversation();
  connect();
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  clearTimeout(state.reconnectTimer);
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  state.active = null;
  showSignin("");
}

function describeToken(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return `Signed in as ${claims.sub || "?"}`;
  } catch (_) {
    return "Signed in";
  }
}

// ---------------------------------------------------------------- the socket

function connect() {
  clearTimeout(state.reconnectTimer);
  setConnection("connecting…", "connecting");
  let ws;
  try {
    ws = new WebSocket(state.wsUrl, ["courier.v1", `bearer.${state.token}`]);
  } catch (error) {
    showSignin(`Cannot open a connection to ${state.wsUrl}: ${error.message}`);
    return;
  }
  state.ws = ws;
  let thisOpened = false;
  ws.onopen = () => {
    thisOpened = true;
    state.opened = true;
    state.reconnectDelay = 500;
    state.reconnectFailures = 0;
    setConnection("connected", "connected");
    hideBanner();
    send({ action: "listConversations", limit: 50 });
    if (state.active) resumeActive();
    else if (state.conversationId) send({ action: "getHistory", conversationId: state.conversationId, limit: 50 });
  };
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    setConnection("offline", "offline");
    const active = state.active;
    if ((event.code === CLOSE_MESSAGE_TOO_BIG || event.code === CLOSE_INVALID_DATA) && active && !active.view) {
      // Sending the same message again would be refused the same way: give it back instead.
      renderFailure(active.el, "The server refused this message as too large. Shorten it and send it again.");
      state.active = null;
      setStreaming(false);
      $("message").value = active.text;
    }
    if (!state.opened && !thisOpened) {
      // Browsers hide the HTTP status of a refused upgrade; before any success, the token is the likely cause.
      showSignin("The server refused the connection: the token may be invalid or expired, or the server is not running.");
      return;
    }
    state.reconnectFailures += 1;
    const seconds = Math.round(state.reconnectDelay / 100) / 10;
    showBanner(state.reconnectFailures > 5
      ? `Still cannot reach Courier. Retrying in ${seconds} s… (if this goes on, sign out and in again)`
      : `Connection lost. Reconnecting in ${seconds} s…`, "warn");
    state.reconnectTimer = setTimeout(connect, state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 8000);
  };
}

// JSON.stringify leaves non-ASCII as is; the socket sends it as UTF-8, which is what counts.
function frameBytes(frame) {
  return new TextEncoder().encode(JSON.stringify(frame)).length;
}

function send(frame) {
  if (frameBytes(frame) > FRAME_BUDGET_BYTES) {
    showBanner("That request is too large to send.", "error");
    return false;
  }
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(frame));
    return true;
  }
  return false; // sent again after the reconnect (resume, or the same clientMessageId)
}

// Why a message cannot be sent, in plain words; null when it can. Characters are counted as the
// server counts them (code points: an emoji is one, though it is two UTF-16 units).
function tooLarge(text) {
  const chars = [...text].length;
  if (chars > MAX_MESSAGE_CHARS) {
    return `That message is ${chars.toLocaleString("en")} characters; the limit is ${MAX_MESSAGE_CHARS.toLocaleString("en")}. Shorten it or split it into several messages.`;
  }
  const probe = { action: "sendMessage", clientMessageId: uuid4(), text, conversationId: uuid4() };
  if (frameBytes(probe) > FRAME_BUDGET_BYTES) {
    return "That message is too large to send in one piece. Shorten it or split it into several messages.";
  }
  return null;
}

// After a reconnect: a turn already acknowledged is resumed from the last seq we have; a message
// not yet acknowledged is sent again with the same clientMessageId (the server answers the same ack).
function resumeActive() {
  const active = state.active;
  if (active.view) {
    send({ action: "resume", turnId: active.view.turnId, afterSeq: active.view.lastSeq });
    if (active.stopRequested) send({ action: "cancel", turnId: active.view.turnId });
  } else {
    send(sendMessageFrame(active));
  }
}

// ---------------------------------------------------------------- frames from the server

function onFrame(frame) {
  switch (frame.type) {
    case "ack": return onAck(frame);
    case "chunk":
    case "snapshot": return onTurnFrame(frame);
    case "history": return onHistory(frame);
    case "conversations": return onConversations(frame);
    case "error": return onError(frame);
    default: return undefined; // pong
  }
}

function onAck(frame) {
  const active = state.active;
  if (frame.action !== "sendMessage" || !active || frame.clientMessageId !== active.clientMessageId) return;
  if (!active.view) {
    active.view = new TurnView(frame.turnId);
    active.el.dataset.turnId = frame.turnId;
  }
  if (!state.conversationId) {
    state.conversationId = frame.conversationId;
    history.replaceState(null, "", `#c=${frame.conversationId}`);
    send({ action: "listConversations", limit: 50 });
  }
  if (active.stopRequested) send({ action: "cancel", turnId: frame.turnId });
  const early = state.early;
  state.early = [];
  early.forEach(onTurnFrame);
}

function onTurnFrame(frame) {
  const active = state.active;
  if (!active) return;
  if (!active.view) { state.early.push(frame); return; }
  const view = active.view;
  if (frame.turnId !== view.turnId) return;
  if (active.retryTimer && view.ended && frame.type === "snapshot" && frame.attempt <= view.attempt) {
    // The answer to "is this turn over?" after an error.
    if (TERMINAL.has(frame.status)) { view.settle(); finishActive(); }
    return; // still open: its next attempt is on its way
  }
  const changed = view.apply(frame);
  if (!view.ended && active.retryTimer) stopWaitingForRetry(active); // the next attempt has begun
  if (changed) renderAssistant(active.el, view);
  if (view.ended) {
    if (view.mayRetry) waitForRetry(active);
    else finishActive();
  }
}

// An attempt ended with `error`, but the queue may retry the turn (the worker gave up during a
// database outage): ask the stored turn whether it is over, and keep following it meanwhile.
function waitForRetry(active) {
  if (active.retryTimer) return;
  active.retryTimer = setTimeout(() => {
    if (state.active !== active) return;
    active.view.settle(); // no later attempt came in time: the error stands
    finishActive();
  }, RETRY_WAIT_MS);
  renderAssistant(active.el, active.view, true);
  send({ action: "resume", turnId: active.view.turnId, afterSeq: active.view.lastSeq });
}

function stopWaitingForRetry(active) {
  clearTimeout(active.retryTimer);
  active.retryTimer = null;
}

function onHistory(frame) {
  if (frame.conversationId !== state.conversationId || state.active) return;
  const messages = $("messages");
  messages.replaceChildren();
  for (const turn of frame.turns) {
    const el = appendTurn(turn.userText);
    el.dataset.turnId = turn.turnId;
    const open = turn.status === "queued" || turn.status === "streaming";
    if (open) {
      // The answer is still being written: follow it.
      const view = new TurnView(turn.turnId);
      view.text = turn.assistantText;
      view.reasoning = turn.reasoningText || "";
      state.active = { clientMessageId: null, text: turn.userText, view, el, stopRequested: false };
      renderAssistant(el, view);
      setStreaming(true);
      send({ action: "resume", turnId: turn.turnId, afterSeq: -1 });
    } else {
      renderStoredAssistant(el, turn);
    }
  }
  $("chat-title").textContent = titleOf(state.conversationId);
  if (!frame.turns.length) renderEmptyConversation();
  scrollToEnd();
}

function onConversations(frame) {
  state.conversations = frame.conversations;
  const nav = $("conversations");
  nav.replaceChildren();
  for (const conversation of frame.conversations) {
    const link = document.createElement("a");
    link.href = `#c=${conversation.conversationId}`;
    link.className = "conversation" + (conversation.conversationId === state.conversationId ? " selected" : "");
    link.textContent = conversation.title || "Untitled";
    link.title = new Date(conversation.updatedAt).toLocaleString();
    link.dataset.conversationId = conversation.conversationId;
    nav.appendChild(link);
  }
  if (state.conversationId) $("chat-title").textContent = titleOf(state.conversationId);
}

function onError(frame) {
  const words = frame.message || PLAIN_ERRORS[frame.code] || "Something went wrong.";
  const active = state.active;
  if (frame.action === "sendMessage" && active && frame.clientMessageId === active.clientMessageId) {
    renderFailure(active.el, words);
    state.active = null;
    setStreaming(false);
    if (frame.retryable) $("message").value = active.text; // let the person send it again
    return;
  }
  if (frame.action === "resume" && active && active.retryTimer) {
    if (!frame.retryable) { active.view.settle(); finishActive(); return; }
    // The server cannot tell yet whether the turn is over (its database is away): ask again.
    setTimeout(() => {
      if (state.active === active && active.retryTimer) {
        send({ action: "resume", turnId: active.view.turnId, afterSeq: active.view.lastSeq });
      }
    }, STATUS_POLL_MS);
    return;
  }
  if (frame.action === "resume" && active) {
    renderFailure(active.el, "This answer can no longer be followed. Reload the conversation to see what was saved.");
    state.active = null;
    setStreaming(false);
    return;
  }
  if (frame.action === "getHistory") {
    state.conversationId = null;
    history.replaceState(null, "", "#");
    renderEmptyConversation();
  }
  showBanner(words, "error");
}

// ---------------------------------------------------------------- actions of the person

function sendMessageFrame(active) {
  const frame = { action: "sendMessage", clientMessageId: active.clientMessageId, text: active.text };
  if (active.conversationId) frame.conversationId = active.conversationId;
  return frame;
}

function sendMessage(text) {
  if (state.active || !text.trim()) return;
  hideBanner();
  $("empty")?.remove();
  const el = appendTurn(text);
  state.active = {
    clientMessageId: uuid4(), text, conversationId: state.conversationId, view: null, el, stopRequested: false,
  };
  state.early = [];
  renderAssistant(el, null);
  setStreaming(true);
  send(sendMessageFrame(state.active)); // if the socket is down, the reconnect sends it
  scrollToEnd();
}

function stop() {
  const active = state.active;
  if (!active || active.stopRequested) return;
  active.stopRequested = true;
  $("stop").textContent = "Stopping…";
  $("stop").disabled = true;
  if (active.view) send({ action: "cancel", turnId: active.view.turnId });
}

function finishActive() {
  const active = state.active;
  stopWaitingForRetry(active);
  state.active = null;
  setStreaming(false);
  renderAssistant(active.el, active.view);
  send({ action: "listConversations", limit: 50 });
}

function openConversation(conversationId) {
  if (state.active) return; // finish or stop the current answer first
  state.conversationId = conversationId;
  hideBanner();
  $("messages").replaceChildren();
  if (conversationId) {
    send({ action: "getHistory", conversationId, limit: 50 });
  } else {
    renderEmptyConversation();
  }
  for (const link of document.querySelectorAll(".conversation")) {
    link.classList.toggle("selected", link.dataset.conversationId === conversationId);
  }
}

// ---------------------------------------------------------------- rendering

function appendTurn(userText) {
  const el = document.createElement("article");
  el.className = "turn";
  const user = document.createElement("div");
  user.className = "msg user";
  user.textContent = userText;
  const assistant = document.createElement("div");
  assistant.className = "msg assistant";
  assistant.dataset.testid = "assistant";
  el.append(user, assistant);
  $("messages").appendChild(el);
  return el;
}

function renderAssistant(el, view, retrying = false) {
  const box = el.querySelector(".assistant");
  const reasoningOpen = Boolean(box.querySelector("details.reasoning[open]")); // keep what the user opened
  box.replaceChildren();
  if (view && view.reasoning) box.appendChild(reasoningBox(view.reasoning, reasoningOpen));
  if (view) {
    for (const tool of view.tools.values()) box.appendChild(toolCard(tool));
  }
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = view ? view.text : "";
  box.appendChild(text);
  if (!view || !view.ended) {
    const cursor = document.createElement("span");
    cursor.className = "cursor";
    cursor.dataset.testid = "cursor";
    text.appendChild(cursor);
    box.dataset.status = "streaming";
  } else if (retrying) {
    box.dataset.status = "retrying";
    box.appendChild(footer("retrying", view.model, null, view.ended.errorText));
  } else {
    box.dataset.status = view.ended.status;
    box.appendChild(footer(view.ended.status, view.model, view.ended.metadata, view.ended.errorText));
  }
  scrollToEnd();
}

function renderStoredAssistant(el, turn) {
  const box = el.querySelector(".assistant");
  box.replaceChildren();
  if (turn.reasoningText) box.appendChild(reasoningBox(turn.reasoningText, false));
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = turn.assistantText;
  box.appendChild(text);
  box.dataset.status = turn.status;
  const usage = turn.usage ? { usage: turn.usage } : null;
  box.appendChild(footer(turn.status, turn.model, usage, turn.status === "failed" ? "The answer failed." : null));
}

// The model's reasoning, collapsed above the answer: shown on request, never mixed into it.
function reasoningBox(reasoning, open) {
  const details = document.createElement("details");
  details.className = "reasoning";
  details.dataset.testid = "reasoning";
  details.open = open;
  const summary = document.createElement("summary");
  summary.textContent = "Reasoning";
  const body = document.createElement("div");
  body.className = "reasoning-text";
  body.textContent = reasoning;
  details.append(summary, body);
  return details;
}

function renderFailure(el, words) {
  const box = el.querySelector(".assistant");
  box.replaceChildren();
  box.dataset.status = "failed";
  box.appendChild(footer("failed", null, null, words));
}

function toolCard(tool) {
  const card = document.createElement("div");
  card.className = "tool" + (tool.done ? " done" : "");
  card.dataset.testid = "tool";
  const head = document.createElement("div");
  head.className = "tool-head";
  const args = Object.entries(tool.input).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ");
  head.textContent = `${tool.error ? "✗" : tool.done ? "✓" : "⚙"} ${tool.name}(${args})`;
  card.appendChild(head);
  if (tool.summary) {
    const summary = document.createElement("div");
    summary.className = "tool-summary";
    summary.textContent = tool.summary;
    card.appendChild(summary);
  }
  if (tool.done) {
    const output = document.createElement("div");
    output.className = "tool-output";
    const shown = tool.error || (typeof tool.output === "string" ? tool.output : JSON.stringify(tool.output));
    output.textContent = shown.length > 300 ? `${shown.slice(0, 300)}…` : shown;
    card.appendChild(output);
  }
  return card;
}

const STATUS_WORDS = {
  cancelled: "Stopped. The text so far is saved.",
  interrupted: "Interrupted: the connection was gone too long. The text so far is saved.",
  queued: "Waiting for its turn…",
  streaming: "Still being written…",
};

function footer(status, model, metadata, errorText) {
  const foot = document.createElement("div");
  foot.className = `foot ${status}`;
  foot.dataset.testid = "turn-status";
  const parts = [];
  if (status === "failed") parts.push(errorText || "The answer failed.");
  else if (status === "retrying") parts.push(`${errorText || "This attempt failed."} Waiting for the retry…`);
  else if (STATUS_WORDS[status]) parts.push(STATUS_WORDS[status]);
  if (model) parts.push(model);
  const usage = metadata && metadata.usage;
  if (usage && (usage.inputTokens || usage.outputTokens)) parts.push(`${usage.inputTokens} in / ${usage.outputTokens} out tokens`);
  if (metadata && metadata.timeToFirstTokenMs != null) parts.push(`first token ${metadata.timeToFirstTokenMs} ms`);
  if (metadata && metadata.latencyMs != null) parts.push(`${(metadata.latencyMs / 1000).toFixed(1)} s`);
  foot.textContent = parts.join(" · ");
  return foot;
}

function renderEmptyConversation() {
  $("chat-title").textContent = state.conversationId ? titleOf(state.conversationId) : "New conversation";
  if (!$("messages").children.length) {
    const empty = document.createElement("p");
    empty.id = "empty";
    empty.className = "empty muted";
    empty.textContent = "Ask anything. Try “what time is it in Tokyo?” to see a tool call.";
    $("messages").appendChild(empty);
  }
}

function setStreaming(streaming) {
  $("send").hidden = streaming;
  $("stop").hidden = !streaming;
  $("stop").disabled = false;
  $("stop").textContent = "■ Stop";
}

function setConnection(words, kind) {
  const el = $("connection");
  el.textContent = words;
  el.className = `connection ${kind}`;
}

function showBanner(words, kind) {
  const banner = $("banner");
  banner.textContent = words;
  banner.className = `banner ${kind}`;
  banner.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function scrollToEnd() {
  const messages = $("messages");
  messages.scrollTop = messages.scrollHeight;
}

function titleOf(conversationId) {
  const found = state.conversations.find((c) => c.conversationId === conversationId);
  return found ? found.title : "Conversation";
}

function conversationFromHash() {
  const match = /^#c=([0-9a-f-]{36})$/i.exec(location.hash);
  return match ? match[1] : null;
}

function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---------------------------------------------------------------- wiring

$("dev-token-button").addEventListener("click", signInWithDevToken);
$("token-button").addEventListener("click", () => {
  const token = $("token-input").value.trim();
  if (token) startApp(token);
  else showSignin("Paste a token first.");
});
$("signout").addEventListener("click", signOut);
$("new-conversation").addEventListener("click", () => {
  if (state.active) return;
  history.replaceState(null, "", "#");
  openConversation(null);
});
$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value;
  if (!text.trim() || state.active) return;
  const refusal = tooLarge(text);
  if (refusal) {
    showBanner(refusal, "error"); // nothing is sent; the text stays in the box to be shortened
    return;
  }
  $("message").value = "";
  sendMessage(text);
});
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", stop);
window.addEventListener("hashchange", () => {
  const id = conversationFromHash();
  if (id !== state.conversationId) openConversation(id);
});
setInterval(() => send({ action: "ping" }), 5 * 60 * 1000); // API Gateway closes idle sockets after 10 min

init();
