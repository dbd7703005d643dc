// A real webhook receiver on 127.0.0.1: records every delivery, and can be told to fail.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  at: number;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: any;
  answered: number;
}

export interface Receiver {
  url: string;
  port: number;
  deliveries: Delivery[];
  /** Answer this many final deliveries (not progress events) with 500 before succeeding. */
  failNext: number;
  /** Answer every progress event with 500. */
  failProgress: boolean;
  /**
   * While set, final deliveries go unanswered until it settles (each is recorded when answered;
   * one whose sender went away meanwhile is not recorded: nothing was delivered).
   */
  hold: Promise<unknown> | undefined;
  /** Final deliveries held right now (arrived, not answered). */
  held: number;
  /** Held deliveries whose sender closed the connection before the answer. */
  dropped: number;
  /** Final deliveries only (completed, failed, cancelled). */
  finals(): Delivery[];
  /** Resolves when `n` deliveries matching `filter` (default: final ones) have arrived. */
  waitFor(n: number, filter?: (d: Delivery) => boolean, timeoutMs?: number): Promise<Delivery[]>;
  close(): Promise<void>;
  listen(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<Receiver> {
  let server: http.Server | undefined;
  const receiver: Receiver = {
    url: '',
    port,
    deliveries: [],
    failNext: 0,
    failProgress: false,
    hold: undefined,
    held: 0,
    dropped: 0,
    finals: () => receiver.deliveries.filter((d) => d.body?.event !== 'progress'),
    async waitFor(n, filter = (d) => d.body?.event !== 'progress', timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const matching = receiver.deliveries.filter(filter);
        if (matching.length >= n) return matching;
        if (Date.now() > deadline) throw new Error(`expected ${n} deliveries, got ${matching.length}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      if (!server) return;
      const s = server;
      server = undefined;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    async listen() {
      server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', async () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let body: any;
          try {
            body = JSON.parse(raw);
          } catch {
            body = raw;
          }
          const progress = body?.event === 'progress';
          if (!progress && receiver.hold) {
            receiver.held += 1;
            let gone = false;
            const onClose = () => {
              gone = true;
              receiver.dropped += 1;
            };
            req.socket.once('close', onClose);
            await receiver.hold.catch(() => undefined);
            req.socket.off('close', onClose);
            receiver.held -= 1;
            if (gone) return;
          }
          const fail = progress ? receiver.failProgress : receiver.failNext > 0;
          if (fail && !progress) receiver.failNext -= 1;
          const answered = fail ? 500 : 200;
          receiver.deliveries.push({ at: Date.now(), headers: req.headers, raw, body, answered });
          res.writeHead(answered).end();
        });
      });
      await new Promise<void>((resolve) => server!.listen(receiver.port, '127.0.0.1', resolve));
      receiver.port = (server.address() as AddressInfo).port;
      receiver.url = `http://127.0.0.1:${receiver.port}/hook`;
    },
  };
  await receiver.listen();
  return receiver;
}
