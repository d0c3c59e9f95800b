// Courier's own requests (listConversations, getHistory, cancel, ping) on a socket of their own, in
// the `{type, requestId}` envelope (docs/protocol.md); the AI SDK's transport has its own socket.
// This socket also carries the heartbeat that notices a network that went silent: a socket whose
// peer vanished raises no event, so while an answer is expected and nothing has been heard for a
// few seconds (on this socket or the transport's), the page pings, and a ping that hears nothing
// back means a lost connection. A streaming answer is its own heartbeat: it costs no pings.

export type Link = 'connecting' | 'online' | 'reconnecting' | 'refused' | 'expired';

export class CourierError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
  }
}

export interface Timings {
  /** While an answer is queued or streaming, this long without hearing anything sends a ping: a
   * loss is noticed within this, plus a second, plus the pong wait. */
  busySilenceMs: number;
  /** Between pings otherwise (also keeps the connection inside API Gateway's 10-minute idle timeout). */
  idlePingMs: number;
  pongWaitMs: number;
  requestTimeoutMs: number;
  openTimeoutMs: number;
}

export const TIMINGS: Timings = { busySilenceMs: 3000, idlePingMs: 60000, pongWaitMs: 3000, requestTimeoutMs: 15000, openTimeoutMs: 6000 };

interface Pending {
  resolve: (frame: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

// A socket that closes before it ever opened, this many times in a row with a token that never
// had an open socket, means the token is refused (a browser is not told the upgrade's status).
const REFUSALS_BEFORE_SIGN_IN = 2;
const MAX_BACKOFF_MS = 8000;
const BUSY_CHECK_MS = 1000;

export class CourierConnection {
  link: Link = 'connecting';
  private socket: WebSocket | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly watchers = new Set<(link: Link) => void>();
  private everOpened = false;
  private closesBeforeOpen = 0;
  private backoffMs = 500;
  private busy = false;
  private stopped = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private lastHeardAt = 0;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly isExpired: () => boolean,
    private readonly timings: Timings = TIMINGS,
  ) {}

  get protocols(): string[] {
    return ['courier.v1', `bearer.${this.token}`];
  }

  watch(watcher: (link: Link) => void): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pingTimer);
    this.drop(new CourierError('closed', 'Signed out.'));
  }

  /** Ping often while an answer is expected, rarely otherwise. */
  setBusy(busy: boolean): void {
    if (busy === this.busy) return;
    this.busy = busy;
    if (this.link === 'online') this.schedulePing();
  }

  /** Something arrived from Courier (on any of the page's sockets): the network is alive. */
  heard(): void {
    this.lastHeardAt = Date.now();
  }

  request(type: string, fields: Record<string, unknown> = {}, timeoutMs = this.timings.requestTimeoutMs): Promise<Record<string, unknown>> {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new CourierError('offline', 'Not connected to Courier.', true));
    }
    const requestId = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new CourierError('timeout', 'Courier did not answer in time.', true));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      socket.send(JSON.stringify({ type, requestId, ...fields }));
    });
  }

  private setLink(link: Link): void {
    if (link === this.link) return;
    this.link = link;
    this.watchers.forEach((watcher) => watcher(link));
  }

  private open(): void {
    clearTimeout(this.reconnectTimer);
    if (this.stopped) return;
    if (this.isExpired()) {
      this.setLink('expired');
      return;
    }
    let opened = false;
    const socket = new WebSocket(this.url, this.protocols);
    this.socket = socket;
    // A connection attempt over a silent network neither opens nor fails: give it up after a while.
    const openTimer = setTimeout(() => this.lost(socket, { refused: false }), this.timings.openTimeoutMs);
    socket.onopen = () => {
      clearTimeout(openTimer);
      opened = true;
      this.everOpened = true;
      this.closesBeforeOpen = 0;
      this.backoffMs = 500;
      this.setLink('online');
      this.schedulePing();
    };
    socket.onmessage = (event) => this.receive(String(event.data));
    socket.onclose = () => {
      clearTimeout(openTimer);
      this.lost(socket, { refused: !opened });
    };
  }

  /** The socket closed, or went silent: fail what waits on it, then reconnect or say why not. */
  private lost(socket: WebSocket, { refused }: { refused: boolean }): void {
    if (this.socket !== socket) return;
    this.drop(new CourierError('offline', 'The connection to Courier was lost.', true));
    if (this.stopped) return;
    if (refused) this.closesBeforeOpen += 1;
    if (this.isExpired()) return this.setLink('expired');
    if (!this.everOpened && this.closesBeforeOpen >= REFUSALS_BEFORE_SIGN_IN && navigator.onLine) {
      return this.setLink('refused');
    }
    this.setLink(this.everOpened ? 'reconnecting' : 'connecting');
    this.reconnectTimer = setTimeout(() => this.open(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }

  private receive(text: string): void {
    this.heard();
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const pending = typeof frame.requestId === 'string' ? this.pending.get(frame.requestId) : undefined;
    if (!pending) return;
    this.pending.delete(frame.requestId as string);
    clearTimeout(pending.timer);
    if (frame.type === 'error') {
      pending.reject(new CourierError(String(frame.code), String(frame.message), Boolean(frame.retryable)));
    } else {
      pending.resolve(frame);
    }
  }

  private drop(error: Error): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
    clearTimeout(this.pingTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
  }

  private schedulePing(): void {
    clearTimeout(this.pingTimer);
    // Busy: look every second whether the page has been silent too long; idle: ping now and then.
    this.pingTimer = setTimeout(() => this.ping(), this.busy ? BUSY_CHECK_MS : this.timings.idlePingMs);
  }

  private async ping(): Promise<void> {
    const socket = this.socket;
    const sentAt = Date.now();
    if (this.busy && sentAt - this.lastHeardAt < this.timings.busySilenceMs) return this.schedulePing();
    try {
      await this.request('ping', {}, this.timings.pongWaitMs);
    } catch (error) {
      if (this.socket !== socket || !socket) return;
      // Anything heard since the ping (a throttled route's error, an answer's chunk) is alive too.
      if (!(error instanceof CourierError && error.code === 'rate_limited') && this.lastHeardAt < sentAt) {
        // Nothing at all: the network went silent. Give the socket up, as if it had closed.
        return this.lost(socket, { refused: false });
      }
    }
    if (this.socket === socket) this.schedulePing();
  }
}
