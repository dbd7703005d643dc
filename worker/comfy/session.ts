// The worker's one websocket to ComfyUI. Events are hints (fast completion and progress), never the
// authority: watchers also ask /history. When the socket drops it is reopened up to
// WEBSOCKET_RECONNECT_ATTEMPTS times, WEBSOCKET_RECONNECT_DELAY_S apart; after that the session is
// "down" and watchers fail their jobs instead of waiting on a dead ComfyUI.
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { Logger } from '../observability/logger';
import { isObject } from '../util/objects';
import type { ComfyEvent } from './types';

const HANDSHAKE_TIMEOUT_MS = 5_000;
/** A socket that answers no ping for this long is half-open: drop it and reconnect. */
const PING_INTERVAL_MS = 15_000;

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
  /** Reconnects are exhausted: ComfyUI is unreachable. */
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
  private stateValue: SessionState = 'idle';
  private pingTimer: NodeJS.Timeout | undefined;
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

  /** Opens the socket (or confirms it is open). Rejects if this one attempt fails. */
  async connect(): Promise<void> {
    if (this.stateValue === 'open') return;
    if (this.stateValue === 'closed') throw new Error('session is closed');
    clearTimeout(this.retryTimer);
    this.stateValue = 'connecting';
    await this.open();
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
    clearInterval(this.pingTimer);
    this.socket?.terminate();
    this.socket = undefined;
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.wsUrl, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false });
      let opened = false;
      socket.on('open', () => {
        opened = true;
        this.socket = socket;
        const wasReconnecting = this.stateValue === 'reconnecting';
        this.stateValue = 'open';
        this.startPing(socket);
        this.opts.logger.info({ url: this.opts.baseUrl, reconnected: wasReconnecting }, 'ComfyUI websocket open');
        resolve();
        if (wasReconnecting) this.emit('reconnected');
      });
      socket.on('message', (data, isBinary) => {
        if (!isBinary) this.onText(data.toString());
      });
      socket.on('error', (err) => {
        if (!opened) reject(err);
      });
      socket.on('close', (code) => {
        if (!opened) return;
        if (this.socket === socket) this.socket = undefined;
        clearInterval(this.pingTimer);
        if (this.stateValue === 'closed') return;
        this.opts.logger.warn({ code }, 'ComfyUI websocket closed; reconnecting');
        this.stateValue = 'reconnecting';
        this.reconnect(1);
      });
    });
  }

  private reconnect(attempt: number): void {
    if (this.stateValue !== 'reconnecting') return;
    if (attempt > this.opts.reconnectAttempts) {
      const reason = `websocket closed and ${this.opts.reconnectAttempts} reconnect attempts failed`;
      this.stateValue = 'down';
      this.opts.logger.error({ url: this.opts.baseUrl }, `ComfyUI unreachable: ${reason}`);
      this.emit('down', reason);
      return;
    }
    // The first retry is immediate: most drops are transient and the socket comes straight back.
    const delay = attempt === 1 ? 0 : this.opts.reconnectDelayMs;
    this.retryTimer = setTimeout(() => {
      if (this.stateValue !== 'reconnecting') return;
      this.open().catch((err: Error) => {
        this.opts.logger.warn({ attempt, err: err.message }, 'ComfyUI websocket reconnect failed');
        this.reconnect(attempt + 1);
      });
    }, delay);
  }

  private startPing(socket: WebSocket): void {
    let alive = true;
    socket.on('pong', () => {
      alive = true;
    });
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!alive) {
        this.opts.logger.warn('ComfyUI websocket answered no ping; dropping it');
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, PING_INTERVAL_MS);
    this.pingTimer.unref();
  }

  private onText(text: string): void {
    if (this.opts.trace) this.opts.logger.info({ frame: text.slice(0, 2000) }, 'websocket frame');
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
