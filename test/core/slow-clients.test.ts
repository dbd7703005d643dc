// Slow or lying clients against real sockets: a body announced as 999,999,999 bytes that never
// comes is answered 408 (JSON) and its connection closed; headers that never end are cut off;
// idle kept-alive connections are closed; connections beyond MAX_CONNECTIONS are dropped. The
// HTTP door and the RunPod local API (the Vast door builds its server the same way: doors/limits.ts).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, startTestWorker, until, type TestWorker } from '../support/worker';

let sim: Simulator;
let worker: TestWorker | undefined;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: { '*': 1 } });
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});
afterAll(() => sim.close());

const LIMITS = {
  REQUEST_HEADERS_TIMEOUT_S: '1',
  REQUEST_BODY_TIMEOUT_S: '1',
  REQUEST_TIMEOUT_S: '60',
  KEEP_ALIVE_TIMEOUT_S: '0.5',
  // Large enough that the announced length is not refused at once with a 413.
  MAX_BODY_MB: '2000',
};

interface Exchange {
  /** Everything the server sent before closing. */
  text: string;
  /** The server closed the connection (rather than the test giving up). */
  closed: boolean;
}

/** Opens a socket, writes `data`, then waits (up to `waitMs`) for the server to close it. */
function exchange(url: string, data: string, waitMs = 15_000): Promise<Exchange> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(data));
    let text = '';
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, waitMs);
    socket.on('data', (chunk) => (text += chunk.toString()));
    // A dropped connection may come as a reset: closed all the same.
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ text, closed: true });
    });
  });
}

function bodyOf(text: string): any {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
}

const STALLED_RUN =
  'POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n' +
  '{"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}, "images": [{"name": "a.png", "image": "' +
  'A'.repeat(100_000);

test('the HTTP door: a body that stalls after its headers gets a 408 naming the body, and the connection closes', async () => {
  worker = await startTestWorker(sim.url, LIMITS);
  const { text, closed } = await exchange(worker.url, STALLED_RUN);
  expect(closed).toBe(true);
  expect(text).toMatch(/^HTTP\/1\.1 408 /);
  expect(text).toMatch(/\r\nconnection: close\r\n/i);
  expect(bodyOf(text)).toEqual({
    error: {
      code: 'request_timeout',
      message: expect.stringContaining('REQUEST_BODY_TIMEOUT_S'),
      status: 408,
      field: 'body',
    },
  });
  // No job, and the part of the image already decoded left no spool file behind.
  expect((await getJson(`${worker.url}/stats`)).body.total_jobs).toBe(0);
  // (The spool is released when the response closes; its file goes a moment later.)
  const inputs = path.join(`${worker.dbPath}-files`, 'inputs');
  const left = () => (fs.existsSync(inputs) ? fs.readdirSync(inputs) : []);
  await until(() => left().length === 0, 3_000, 'the spool file to go').catch(() => undefined);
  expect(left()).toEqual([]);
});

test('headers that never end are cut off; an idle kept-alive connection is closed', async () => {
  worker = await startTestWorker(sim.url, LIMITS);
  const headers = await exchange(worker.url, 'GET /stats HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  expect(headers.closed).toBe(true);
  expect(headers.text).toMatch(/^HTTP\/1\.1 408 /);

  const idle = await exchange(worker.url, 'GET /stats HTTP/1.1\r\nHost: x\r\n\r\n');
  expect(idle.closed).toBe(true);
  expect(idle.text).toMatch(/^HTTP\/1\.1 200 /);
  expect(idle.text).toMatch(/\r\nkeep-alive: timeout=0\r\n/i);
});

test('connections beyond MAX_CONNECTIONS are dropped; the ones within keep being served', async () => {
  worker = await startTestWorker(sim.url, { ...LIMITS, KEEP_ALIVE_TIMEOUT_S: '30', MAX_CONNECTIONS: '2' });
  const { hostname, port } = new URL(worker.url);
  const held = await Promise.all(
    [0, 1].map(
      () =>
        new Promise<net.Socket>((resolve) => {
          const socket = net.connect(Number(port), hostname, () => resolve(socket));
        }),
    ),
  );
  try {
    const third = await exchange(worker.url, 'GET /stats HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(third).toEqual({ text: '', closed: true });
    const answer = new Promise<string>((resolve) => held[0]!.once('data', (chunk) => resolve(chunk.toString())));
    held[0]!.write('GET /stats HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await answer).toMatch(/^HTTP\/1\.1 200 /);
  } finally {
    for (const socket of held) socket.destroy();
  }
});

test('the RunPod local API: a stalled body gets a 408 and the connection closes', async () => {
  worker = await startTestWorker(sim.url, { SERVE_API_LOCALLY: 'true', ...LIMITS });
  const { text, closed } = await exchange(
    worker.url,
    'POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{"input": ',
  );
  expect(closed).toBe(true);
  expect(text).toMatch(/^HTTP\/1\.1 408 /);
  expect(bodyOf(text).error).toMatchObject({ code: 'request_timeout', status: 408 });
});
