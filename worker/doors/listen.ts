// Listening and closing for the HTTP(S) servers of the doors.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../config';

/** Listens and resolves with a URL clients on this machine can use. Port 0 picks a free port. */
export function listen(server: http.Server, host: string, port: number, what: string, scheme = 'http'): Promise<string> {
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

/** Stops accepting connections and drops open ones (waiting callers' jobs are recovered later). */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
