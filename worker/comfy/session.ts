// The worker's one websocket to ComfyUI. Events are hints (fast completion and progress), never the
// authority: watchers also ask /history. When the socket drops it is reopened at once, then
// WEBSOCKET_RECONNECT_DELAY_S apart; after WEBSOCKET_RECONNECT_ATTEMPTS failures the session is
// "down" (watchers fail their jobs rather than wait on a dead ComfyUI) but it keeps trying in the
// background, more slowly, and says `reconnected` when ComfyUI is back.
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { Logger } from '../observability/logger';
import { isObject } from '../util/objects';
import type { ComfyEvent } from './types';

const HANDSHAKE_TIMEOUT_MS = 5_000;
/** A socket that answers no ping for this long is half-open: drop it and reconnect. */
const PING_INTERVAL_MS = 15_000;
/** While down, retries back off (doubling from WEBSOCKET_RECONNECT_DELAY_S) up to this. */
const MAX_DOWN_RETRY_MS = 10_000;
const MIN_RETRY_MS = 100;
/** A socket that stays open this long ends an outage (resets the failure count). */
const STABLE_AFTER_MS = 1_000;

/** How ComfyUI's `progress_state` frames begin (see ../shared/comfy-traces/ws_success_run.json). */
const PROGRESS_STATE_HEAD = '{"type": "progress_state"';

export type SessionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'down' | 'closed';

export interface SessionOptions {
  baseUrl: string;
  clientId: string;
  reconnectAttempts: number;
  reconnectDelayMs: number;
  trace: boolean;
  logger: Logger;
}

type Listener = (event: ComfyEvent) => void;

export interface SessionEvents {
  /** The socket is open again after a drop: watchers re-check /history (events may be lost). */
  reconnected: [];
  /** Reconnects are exhausted: ComfyUI is unreachable (the session keeps trying in the background). */
  down: [reason: string];
  /** Every parsed text frame, for listeners that want all of them (queue status). */
  event: [ComfyEvent];
}

export class ComfySession extends EventEmitter<SessionEvents> {
  readonly clientId: string;
  private readonly opts: SessionOptions;
  private readonly wsUrl: string;
  private readonly byPrompt = new Map<string, Set<Listener>>();
  private socket: WebSocket | undefined;
  /** A socket still in its handshake, so close() can end it too. */
  private pending: WebSocket | undefined;
  private opening: Promise<void> | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  /** `down` was already logged for this outage (a socket that opens and drops again is the same one). */
  private downSaid = false;
  private stateValue: SessionState = 'idle';
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(opts: SessionOptions) {
    super();
    this.opts = opts;
    this.clientId = opts.clientId;
    const url = new URL('/ws', opts.baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('clientId', opts.clientId);
    this.wsUrl = url.toString();
  }

  get state(): SessionState {
    return this.stateValue;
  }

  get isOpen(): boolean {
    return this.stateValue === 'open';
  }

  /**
   * Opens the socket now, or joins the attempt under way; resolves once it is open. Rejects if
   * this attempt fails (background reconnection, if any, goes on).
   */
  connect(): Promise<void> {
    if (this.stateValue === 'open') return Promise.resolve();
    if (this.stateValue === 'closed') return Promise.reject(new Error('session is closed'));
    if (this.opening) return this.opening;
    if (this.stateValue === 'idle') this.stateValue = 'connecting';
    const attempt = this.open().finally(() => {
      if (this.opening === attempt) this.opening = undefined;
    });
    this.opening = attempt;
    return attempt;
  }

  /** Calls `listener` with every event that carries this prompt_id, until unsubscribed. */
  subscribe(promptId: string, listener: Listener): () => void {
    let set = this.byPrompt.get(promptId);
    if (!set) {
      set = new Set();
      this.byPrompt.set(promptId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.byPrompt.delete(promptId);
    };
  }

  close(): void {
    this.stateValue = 'closed';
    clearTimeout(this.retryTimer);
    clearTimeout(this.stableTimer);
    this.pending?.terminate();
    this.socket?.terminate();
    this.socket = undefined;
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.wsUrl, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false });
      this.pending = socket;
      let opened = false;
      let stable = false;
      let pingTimer: NodeJS.Timeout | undefined;
      socket.on('open', () => {
        if (this.pending === socket) this.pending = undefined;
        if (this.stateValue === 'closed') {
          socket.terminate();
          return reject(new Error('session is closed'));
        }
        opened = true;
        // Only one socket per client id: ComfyUI sends a client's events to its newest socket.
        if (this.socket && this.socket !== socket) this.socket.terminate();
        this.socket = socket;
        const wasAway = this.stateValue === 'reconnecting' || this.stateValue === 'down';
        this.stateValue = 'open';
        clearTimeout(this.retryTimer);
        // Count the outage as over only once the socket stays up: a server that accepts and
        // drops at once must not make the session reconnect without pause.
        clearTimeout(this.stableTimer);
        this.stableTimer = setTimeout(() => {
          if (this.socket !== socket) return;
          stable = true;
          this.failures = 0;
          this.downSaid = false;
        }, STABLE_AFTER_MS);
        this.stableTimer.unref();
        pingTimer = this.keepAlive(socket);
        this.opts.logger.info({ url: this.opts.baseUrl, reconnected: wasAway }, 'ComfyUI websocket open');
        resolve();
        if (wasAway) this.emit('reconnected');
      });
      socket.on('message', (data, isBinary) => {
        if (!isBinary && this.socket === socket) this.onText(data.toString());
      });
      socket.on('error', (err) => {
        if (this.pending === socket) this.pending = undefined;
        if (!opened) reject(err);
      });
      socket.on('close', (code) => {
        clearInterval(pingTimer);
        if (!opened || this.socket !== socket) return;
        this.socket = undefined;
        if (this.stateValue === 'closed') return;
        this.opts.logger.warn({ code }, 'ComfyUI websocket closed; reconnecting');
        this.stateValue = 'reconnecting';
        if (!stable) this.failures += 1; // it came back only to drop again: still the same outage
        this.scheduleRetry();
      });
    });
  }

  /**
   * The next background attempt: the first at once, then WEBSOCKET_RECONNECT_DELAY_S apart; once
   * the session is down, backing off up to MAX_DOWN_RETRY_MS.
   */
  private scheduleRetry(): void {
    if (this.stateValue === 'closed' || this.stateValue === 'open') return;
    if (this.failures >= this.opts.reconnectAttempts) this.markDown();
    const base = Math.max(this.opts.reconnectDelayMs, MIN_RETRY_MS);
    const beyond = this.failures - this.opts.reconnectAttempts;
    const delay = this.failures === 0 ? 0 : beyond < 0 ? base : Math.min(base * 2 ** Math.min(beyond, 10), MAX_DOWN_RETRY_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.connect().catch((err: Error) => {
        this.failures += 1;
        if (this.failures <= this.opts.reconnectAttempts) {
          this.opts.logger.warn({ attempt: this.failures, err: err.message }, 'ComfyUI websocket reconnect failed');
        }
        this.scheduleRetry();
      });
    }, delay);
    this.retryTimer.unref();
  }

  private markDown(): void {
    if (this.stateValue !== 'reconnecting') return;
    const reason = `websocket closed and ${this.opts.reconnectAttempts} reconnect attempts failed`;
    this.stateValue = 'down';
    // Said (logged) once per outage, but every watcher started meanwhile must hear it.
    if (!this.downSaid) {
      this.opts.logger.error({ url: this.opts.baseUrl }, `ComfyUI unreachable: ${reason}; still trying in the background`);
    }
    this.downSaid = true;
    this.emit('down', reason);
  }

  private keepAlive(socket: WebSocket): NodeJS.Timeout {
    let alive = true;
    socket.on('pong', () => {
      alive = true;
    });
    const timer = setInterval(() => {
      if (!alive) {
        this.opts.logger.warn('ComfyUI websocket answered no ping; dropping it');
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, PING_INTERVAL_MS);
    timer.unref();
    return timer;
  }

  private onText(text: string): void {
    if (this.opts.trace) this.opts.logger.info({ frame: text.slice(0, 2000) }, 'websocket frame');
    // The largest and most frequent frame (every node's state, twice per node), used by nothing
    // here: not parsed. ComfyUI writes it with json.dumps' default separators.
    if (text.startsWith(PROGRESS_STATE_HEAD)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (!isObject(parsed) || typeof parsed.type !== 'string') return;
    const event: ComfyEvent = { type: parsed.type, data: isObject(parsed.data) ? parsed.data : {} };
    this.emit('event', event);
    const promptId = event.data.prompt_id;
    if (typeof promptId !== 'string') return;
    const listeners = this.byPrompt.get(promptId);
    if (listeners) for (const listener of [...listeners]) listener(event);
  }
}
