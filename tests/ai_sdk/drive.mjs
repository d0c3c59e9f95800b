// A stock AI SDK client against Courier: the `ai` package's own WebSocketChatTransport and
// AbstractChat (what `useChat` runs), headless in Node, with `ws` as the WebSocket. No protocol
// code of ours talks to the chat: only the "other tab" of `cancel-elsewhere` speaks Courier's own
// `cancel` action over a plain socket, as a second browser tab would.
//
//   node drive.mjs <scenario> --url ws://… --token <jwt> [--prompt …] [--chat-id …] [--then …]
//                  [--after-words 5] [--prior-turns N] [--trim] [--timeout-s 30]
//
// Scenarios (tests/e2e/test_ai_sdk_transport.py runs them):
//   send              send the prompt, wait for the answer to end
//   regenerate        send the prompt, then regenerate() the answer once it has ended
//   resume            resumeStream() only, as useChat({ resume: true }) does when a page loads
//   stop              send the prompt, chat.stop() once some text has arrived
//   cancel-elsewhere  send the prompt; once some text has arrived, another socket cancels the turn
//   send-resume-on-error  send the prompt; when the request ends in an error, resumeStream()
//   drop-resume       send the prompt; once some text has arrived, the socket is cut (as a network
//                     drop cuts it); then a fresh transport and chat with the same id and messages
//                     call resumeStream(), as a reloaded page does
// With --then, the same chat then sends that prompt too and waits for its answer (what a user does
// after a stop or a cancel). --prior-turns N starts the chat with N earlier exchanges of about 1 KB
// each (a long chat); --trim sends only the last message, as README's useChat example does.
//
// Prints one JSON object on stdout: the chat's final messages, status and error, every onFinish
// call, every onError, the frames the SDK's sockets sent and received; exit 0. A scenario that does
// not end within --timeout-s prints what it has with `timedOut` and what it waited for, exit 3.
import { parseArgs } from 'node:util';
import { AbstractChat, WebSocketChatTransport } from 'ai';
import WebSocket from 'ws';

const { positionals, values: options } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    prompt: { type: 'string', default: 'hello' },
    'chat-id': { type: 'string' },
    'after-words': { type: 'string', default: '5' },
    then: { type: 'string' },
    'prior-turns': { type: 'string', default: '0' },
    trim: { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '30' },
  },
});
const [scenario] = positionals;
if (!options.url || !options.token || !scenario) {
  process.stderr.write('usage: node drive.mjs <scenario> --url ws://… --token <jwt> [--prompt …]\n');
  process.exit(2);
}
const protocols = ['courier.v1', `bearer.${options.token}`];
const afterWords = Number(options['after-words']);

// Everything the output reports, filled in as the scenario runs.
const report = { scenario, chatId: undefined, stage: 'starting', sent: [], received: [] };

function finish(code) {
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(code));
}

const deadline = setTimeout(() => {
  report.timedOut = true;
  report.timedOutWaitingFor = report.stage;
  for (const [name, chat] of Object.entries(chats)) report[name] ??= describe(chat);
  finish(3);
}, Number(options['timeout-s']) * 1000);

// The SDK's sockets, so a scenario can cut one the way a network drop does; every frame recorded.
const sockets = [];
class RecordedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    sockets.push(this);
    this.on('message', data => report.received.push(parseFrame(data)));
  }
  send(data, ...rest) {
    report.sent.push(parseFrame(data));
    return super.send(data, ...rest);
  }
}

function parseFrame(data) {
  try {
    return JSON.parse(data.toString());
  } catch {
    return { unparsed: data.toString() };
  }
}

// The smallest ChatState: what @ai-sdk/react's and ai's own test states keep, plus a change hook.
class RecordingState {
  constructor(messages, onChange) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
    this.onChange = onChange;
  }
  pushMessage = message => {
    this.messages = this.messages.concat(message);
    this.onChange();
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
    this.onChange();
  };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
    this.onChange();
  };
  snapshot = thing => structuredClone(thing);
}

class HeadlessChat extends AbstractChat {
  constructor({ messages = [], ...init }) {
    const watchers = new Set();
    super({ ...init, state: new RecordingState(messages, () => watchers.forEach(watch => watch())) });
    this.watchers = watchers;
    this.finishes = [];
    this.errors = [];
  }
}

const chats = {};

// README's advice: Courier keeps the history, so only the new message needs to travel.
const sendOnlyTheLastMessage = ({ messages }) => ({ messages: messages.slice(-1) });

function earlierExchanges(count) {
  return Array.from({ length: count }, (_, index) => [
    { id: `earlier-question-${index}`, role: 'user', parts: [{ type: 'text', text: `question ${index}` }] },
    { id: `earlier-answer-${index}`, role: 'assistant', parts: [{ type: 'text', text: 'lorem ipsum '.repeat(85) }] },
  ]).flat();
}

function newChat(name, { id, messages } = {}) {
  const transport = new WebSocketChatTransport({
    url: options.url,
    protocols,
    webSocket: RecordedWebSocket,
    prepareSendMessagesRequest: options.trim ? sendOnlyTheLastMessage : undefined,
  });
  const chat = new HeadlessChat({
    id,
    messages,
    transport,
    onFinish: ({ message, isAbort, isDisconnect, isError, finishReason }) =>
      chat.finishes.push({ messageId: message.id, isAbort, isDisconnect, isError, finishReason }),
    onError: error => chat.errors.push(error.message),
  });
  chat.wsTransport = transport;
  chats[name] = chat;
  return chat;
}

function describe(chat) {
  return {
    chatId: chat.id,
    status: chat.status,
    error: chat.error?.message,
    messages: chat.messages,
    finishes: chat.finishes,
    errors: chat.errors,
  };
}

function lastAssistant(chat) {
  const last = chat.lastMessage;
  return last?.role === 'assistant' ? last : undefined;
}

function answerText(message) {
  return (message?.parts ?? []).filter(part => part.type === 'text').map(part => part.text).join('');
}

// Resolves once `predicate(chat)` holds; rejects if `request` (the chat's send) ends first.
function waitFor(chat, stage, predicate, request) {
  report.stage = stage;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (predicate(chat)) {
        chat.watchers.delete(check);
        resolve();
      }
    };
    chat.watchers.add(check);
    check();
    request.then(() => {
      if (chat.watchers.delete(check)) {
        reject(new Error(`the request ended (status ${chat.status}) before: ${stage}`));
      }
    });
  });
}

const someText = chat => answerText(lastAssistant(chat)).trim().split(/\s+/).length >= afterWords;

async function waitUntil(stage, predicate) {
  report.stage = stage;
  while (!predicate()) await new Promise(resolve => setTimeout(resolve, 20));
}

async function otherTabCancels(turnId) {
  const tab = { sent: { action: 'cancel', turnId }, received: [] };
  report.otherTab = tab;
  const socket = new WebSocket(options.url, protocols);
  await new Promise((resolve, reject) => {
    socket.on('open', resolve);
    socket.on('error', reject);
  });
  socket.on('message', data => tab.received.push(parseFrame(data)));
  socket.send(JSON.stringify(tab.sent));
  await waitUntil('the other tab: an answer to its cancel', () => tab.received.length > 0);
  socket.close(1000);
}

const scenarios = {
  async send(chat) {
    await chat.sendMessage({ text: options.prompt });
  },

  async regenerate(chat) {
    await chat.sendMessage({ text: options.prompt });
    report.firstAnswer = structuredClone(lastAssistant(chat));
    report.stage = 'the regenerated answer to end';
    await chat.regenerate();
  },

  // What useChat({ resume: true }) does on page load.
  async resume(chat) {
    report.stage = 'resumeStream() to end';
    await chat.resumeStream();
  },

  async stop(chat) {
    const request = chat.sendMessage({ text: options.prompt });
    await waitFor(chat, `${afterWords} words of the answer`, someText, request);
    await chat.stop();
    await request;
    // The transport sends its `abort` frame best effort after the stream closed: let it leave.
    await waitUntil('the SDK sending its abort frame', () => report.sent.some(frame => frame.type === 'abort'));
  },

  async 'cancel-elsewhere'(chat) {
    const request = chat.sendMessage({ text: options.prompt });
    await waitFor(chat, `${afterWords} words of the answer`, someText, request);
    await otherTabCancels(lastAssistant(chat).metadata?.turnId ?? lastAssistant(chat).id);
    report.stage = 'the answer to end after the cancel';
    await request;
  },

  // What an app does when its request ends in an error it may retry: resumeStream().
  async 'send-resume-on-error'(chat) {
    await chat.sendMessage({ text: options.prompt });
    report.afterError = describe(chat);
    report.stage = 'resumeStream() after the error to end';
    await chat.resumeStream();
  },

  async 'drop-resume'(chat) {
    const request = chat.sendMessage({ text: options.prompt });
    await waitFor(chat, `${afterWords} words of the answer`, someText, request);
    report.droppedAfterText = answerText(lastAssistant(chat));
    sockets.at(-1).terminate();
    report.stage = 'the dropped request to end';
    await request;
    report.dropped = describe(chat);
    chat.wsTransport.close();
    const reloaded = newChat('reloaded', { id: chat.id, messages: structuredClone(chat.messages) });
    report.stage = 'resumeStream() to end';
    await reloaded.resumeStream();
    return reloaded;
  },
};

async function main() {
  const run = scenarios[scenario];
  if (run == null) throw new Error(`unknown scenario ${scenario}: ${Object.keys(scenarios).join(', ')}`);
  const chat = newChat('chat', { id: options['chat-id'], messages: earlierExchanges(Number(options['prior-turns'])) });
  report.chatId = chat.id;
  const final = (await run(chat)) ?? chat;
  if (options.then != null) {
    report.stage = `the answer to --then ${options.then}`;
    await final.sendMessage({ text: options.then });
  }
  Object.assign(report, describe(final), { stage: 'done', socketsOpened: sockets.length });
  for (const each of Object.values(chats)) each.wsTransport.close();
  clearTimeout(deadline);
  finish(0);
}

main().catch(error => {
  report.failure = error.stack ?? String(error);
  for (const [name, chat] of Object.entries(chats)) report[name] ??= describe(chat);
  clearTimeout(deadline);
  finish(1);
});
