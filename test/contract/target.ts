// The server a contract test talks to: a fresh simulator, or the real ComfyUI named by
// COMFYUI_CONTRACT_URL (then nothing is started and fixtures go through the API). Plus a small
// websocket recorder and HTTP helpers shared by the contract and simulator tests.

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../simulator';
import type { WsMessage } from './normalize';

export interface Target {
  readonly url: string;
  /** The simulator, or null when testing a real server. */
  readonly sim: Simulator | null;
  readonly live: boolean;
  close(): Promise<void>;
}

export async function openTarget(opts: SimulatorOptions = {}): Promise<Target> {
  const live = process.env['COMFYUI_CONTRACT_URL'];
  if (live) return { url: live.replace(/\/+$/, ''), sim: null, live: true, close: async () => undefined };
  const sim = await startSimulator(opts);
  return { url: sim.url, sim, live: false, close: () => sim.close() };
}

export function newClientId(prefix = 'contract'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  bytes: Buffer;
}

export async function http(url: string, init?: RequestInit): Promise<HttpResult> {
  const res = await fetch(url, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, text: bytes.toString('utf8'), bytes };
}

export async function getJson<T = unknown>(base: string, path: string): Promise<T> {
  const r = await http(base + path);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as T;
}

export function postJson(base: string, path: string, body: unknown): Promise<HttpResult> {
  return http(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Records every text frame of one websocket, in order. */
export class WsRecorder {
  readonly messages: WsMessage[] = [];
  /** The frames as received, parallel to `messages` (for byte-level checks). */
  readonly raw: string[] = [];
  private readonly waiters = new Set<() => void>();
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      if (binary) return;
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : String(data);
      this.raw.push(text);
      this.messages.push(JSON.parse(text) as WsMessage);
      for (const w of [...this.waiters]) w();
    });
    ws.on('close', () => {
      this.closed = true;
      for (const w of [...this.waiters]) w();
    });
    ws.on('error', () => undefined);
  }

  /** Connects and waits for the first frame (the `status` with sid) unless told not to. */
  static async open(
    base: string,
    clientId: string | null,
    opts: { firstMessage?: unknown; waitFirst?: boolean } = {},
  ): Promise<WsRecorder> {
    const q = clientId === null ? '' : `?clientId=${encodeURIComponent(clientId)}`;
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws' + q);
    const rec = new WsRecorder(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`websocket refused: HTTP ${res.statusCode}`)));
    });
    if (opts.firstMessage !== undefined) ws.send(JSON.stringify(opts.firstMessage));
    if (opts.waitFirst !== false) await rec.waitFor(() => true, 0);
    return rec;
  }

  /** Resolves with the first message at or after `from` that matches. */
  waitFor(pred: (m: WsMessage) => boolean, from: number, timeoutMs = 15000): Promise<WsMessage> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (let k = from; k < this.messages.length; k++) {
          const m = this.messages[k] as WsMessage;
          if (pred(m)) {
            resolve(m);
            return true;
          }
        }
        if (this.closed) {
          reject(new Error('websocket closed'));
          return true;
        }
        return false;
      };
      if (check()) return;
      const waiter = (): void => {
        if (check()) done();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for a websocket message (have ${this.messages.map((m) => m.type).join(',')})`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  /** Messages from index `from` up to and including the final `executing` {node: null} of a prompt. */
  async untilDone(promptId: string, from: number, timeoutMs = 15000): Promise<WsMessage[]> {
    const last = await this.waitFor(
      (m) => m.type === 'executing' && m.data['node'] === null && m.data['prompt_id'] === promptId,
      from,
      timeoutMs,
    );
    return this.messages.slice(from, this.messages.indexOf(last) + 1);
  }

  /** The raw frames of messages[from, to). */
  rawSlice(from: number, to: number): string[] {
    return this.raw.slice(from, to);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** Polls GET /history/{id} until the entry exists. */
export async function waitHistory(base: string, promptId: string, timeoutMs = 15000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await getJson<Record<string, unknown>>(base, `/history/${promptId}`);
    if (Object.keys(h).length > 0) return h;
    if (Date.now() > deadline) throw new Error(`no history for ${promptId}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** POST /prompt that must be accepted; returns the prompt id. */
export async function submit(
  base: string,
  prompt: unknown,
  clientId: string | null,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const r = await postJson(base, '/prompt', { prompt, ...(clientId === null ? {} : { client_id: clientId }), ...extra });
  if (r.status !== 200) throw new Error(`POST /prompt: ${r.status} ${r.text}`);
  return String((JSON.parse(r.text) as { prompt_id: string }).prompt_id);
}
