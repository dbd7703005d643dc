// The ComfyUI client's keep-alive: sockets are reused while busy, dropped by us once idle (before a
// server drops them under a request), and a slow answer on an active socket is still awaited.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ComfyHttp, IDLE_SOCKET_MS } from './http';

let server: http.Server;
let connections = 0;
let url: string;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    const send = () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"queue_running": [], "queue_pending": []}');
    if (req.url === '/queue') send();
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

test('a socket idle longer than IDLE_SOCKET_MS is not reused; one in use is', async () => {
  const comfy = new ComfyHttp(url);
  const before = connections;
  await comfy.queue();
  await comfy.queue();
  expect(connections - before).toBe(1);
  await new Promise((resolve) => setTimeout(resolve, IDLE_SOCKET_MS + 300));
  await comfy.queue();
  expect(connections - before).toBe(2);
});

test('an answer slower than IDLE_SOCKET_MS is still awaited', async () => {
  const slow = http.createServer((_req, res) => {
    setTimeout(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"queue_running": [], "queue_pending": []}'),
      IDLE_SOCKET_MS + 500,
    );
  });
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  try {
    const comfy = new ComfyHttp(`http://127.0.0.1:${(slow.address() as AddressInfo).port}`);
    expect(await comfy.queue()).toEqual({ running: [], pending: [] });
  } finally {
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  }
});
