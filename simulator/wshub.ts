// ComfyUI's websocket registry: one socket per clientId (a reconnect with the same id replaces
// the entry), messages to one sid or broadcast to all registered sockets. Like ComfyUI, closing a
// socket removes whatever is registered under its sid, even if a newer socket took over.

import type { WebSocket } from 'ws';
import { dumps } from '../worker/util/pyjson';

export interface HubHooks {
  /** True while websockets must stay silent (fault stallWebsocket). */
  stalled(): boolean;
  /** Called after a message tagged with a prompt id was sent to at least one socket. */
  sent(promptId: string): void;
}

export class WsHub {
  private readonly sockets = new Map<string, WebSocket>();
  private readonly all = new Set<WebSocket>();

  constructor(private readonly hooks: HubHooks) {}

  register(sid: string, ws: WebSocket): void {
    this.sockets.delete(sid);
    this.sockets.set(sid, ws);
    this.all.add(ws);
    ws.on('close', () => {
      this.all.delete(ws);
      this.sockets.delete(sid);
    });
  }

  /** send_sync(event, data, sid): sid null broadcasts. */
  send(event: string, data: unknown, sid: string | null, promptId?: string): void {
    const targets = sid === null ? [...this.sockets.values()] : this.sockets.has(sid) ? [this.sockets.get(sid) as WebSocket] : [];
    if (targets.length === 0) return;
    if (this.hooks.stalled()) return;
    const text = dumps({ type: event, data });
    for (const ws of targets) if (ws.readyState === ws.OPEN) ws.send(text);
    if (promptId !== undefined) this.hooks.sent(promptId);
  }

  /** Sends to one socket directly (connect-time frames). */
  sendTo(ws: WebSocket, event: string, data: unknown): void {
    if (this.hooks.stalled() || ws.readyState !== ws.OPEN) return;
    ws.send(dumps({ type: event, data }));
  }

  /** Abrupt TCP-level close of every socket (no close frame). */
  terminateAll(): void {
    for (const ws of this.all) ws.terminate();
    this.all.clear();
    this.sockets.clear();
  }

  /** Orderly close of every socket (graceful shutdown); resolves when all are closed or after
   *  `graceMs`, whichever is first. */
  closeAll(graceMs: number): Promise<void> {
    const open = [...this.all].filter((ws) => ws.readyState !== ws.CLOSED);
    if (open.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      let left = open.length;
      const timer = setTimeout(resolve, graceMs);
      for (const ws of open) {
        ws.once('close', () => {
          if (--left > 0) return;
          clearTimeout(timer);
          resolve();
        });
        ws.close(1001, 'server shutting down');
      }
    });
  }
}
