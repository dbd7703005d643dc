// Listening and closing for the HTTP(S) servers of the doors.
import type http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ConfigError } from '../errors';

/** Every socket of a server, websockets included, so closing can drop them all. */
const sockets = new WeakMap<http.Server, Set<Socket>>();
/** Requests of a server whose answer is not fully sent yet, and who waits for there to be none. */
const answering = new WeakMap<http.Server, { count: number; idle: Set<() => void> }>();

/** At a stop, how long answers being written may take before their connections are dropped. */
export const ANSWER_DRAIN_MS = 5_000;

/** Listens and resolves with a URL clients on this machine can use. Port 0 picks a free port. */
export function listen(server: http.Server, host: string, port: number, what: string, scheme = 'http'): Promise<string> {
  const open = new Set<Socket>();
  sockets.set(server, open);
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  const active = { count: 0, idle: new Set<() => void>() };
  answering.set(server, active);
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    active.count++;
    res.once('close', () => {
      if (--active.count > 0) return;
      for (const resolve of active.idle) resolve();
      active.idle.clear();
    });
  });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new ConfigError(`${what}: cannot listen on ${host}:${port}: ${err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address() as AddressInfo;
      const shown = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
      resolve(`${scheme}://${address.family === 'IPv6' && shown !== '127.0.0.1' ? `[${shown}]` : shown}:${address.port}`);
    });
  });
}

/**
 * Stops accepting connections and drops open ones, upgraded websockets included (a waiting
 * caller's job is cancelled; an open ComfyUI UI socket through the proxy must not hold the stop).
 * With `graceMs`, answers still being written get that long to finish before the drop.
 */
export async function close(server: http.Server, graceMs = 0): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const active = answering.get(server);
  if (graceMs > 0 && active && active.count > 0) {
    let timer: NodeJS.Timeout | undefined;
    let done: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      done = resolve;
      active.idle.add(resolve);
      timer = setTimeout(resolve, graceMs);
    });
    clearTimeout(timer);
    if (done) active.idle.delete(done);
  }
  server.closeAllConnections();
  for (const socket of sockets.get(server) ?? []) socket.destroy();
  await closed;
}
