// Listening and closing for the HTTP(S) servers of the doors.
import type http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ConfigError } from '../errors';

/** Every socket of a server, websockets included, so closing can drop them all. */
const sockets = new WeakMap<http.Server, Set<Socket>>();

/** Listens and resolves with a URL clients on this machine can use. Port 0 picks a free port. */
export function listen(server: http.Server, host: string, port: number, what: string, scheme = 'http'): Promise<string> {
  const open = new Set<Socket>();
  sockets.set(server, open);
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
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
 */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
    for (const socket of sockets.get(server) ?? []) socket.destroy();
  });
}
