// The streamed JSON answer on a real HTTP server: the same text JSON.stringify would give with
// the base64 inlined, its exact length announced, and sources read in pieces.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { StreamedJson, type Base64Source } from './streamed-json';

let handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
let failure: unknown;
const server = http.createServer((req, res) => {
  handler(req, res).catch((err: unknown) => {
    failure = err;
    res.destroy();
  });
});
let url: string;
beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** Bytes served in odd-sized pieces, as a file read would not be. */
function source(bytes: Buffer, piece = 1000, size = bytes.length): Base64Source {
  return {
    size,
    open: () =>
      Readable.from(
        (function* () {
          for (let i = 0; i < bytes.length; i += piece) yield bytes.subarray(i, i + piece);
        })(),
      ),
  };
}

test('the text JSON.stringify gives with the base64 in place, and its exact Content-Length', async () => {
  const files = [randomBytes(0), randomBytes(1), randomBytes(2), randomBytes(3), randomBytes(100_001)];
  const value = (data: (i: number) => string | undefined) => ({
    note: 'ünïcödé ✓ "quoted" \u0000 not a placeholder',
    output: files.map((_, i) => ({ i, data: data(i) })),
  });
  handler = async (_req, res) => {
    const body = new StreamedJson();
    await body.send(
      res,
      201,
      value((i) => body.base64(source(files[i]!, 7 + i))),
    );
  };
  const res = await fetch(url);
  const text = await res.text();
  expect(res.status).toBe(201);
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
  expect(text).toBe(JSON.stringify(value((i) => files[i]!.toString('base64'))));
});

test('a source that is not the size it said breaks the answer off (it cannot be finished honestly)', async () => {
  failure = undefined;
  handler = async (_req, res) => {
    const body = new StreamedJson();
    await body.send(res, 200, { data: body.base64(source(randomBytes(100), 10, 200)) });
  };
  await expect(fetch(url).then((r) => r.text())).rejects.toThrow();
  expect(String(failure)).toContain('shrank');
});

test('a client that goes away ends the answer quietly', async () => {
  let finished!: Promise<unknown>;
  handler = async (_req, res) => {
    const body = new StreamedJson();
    const big: Base64Source = {
      size: 50_000_000,
      open: () =>
        Readable.from(
          (function* () {
            for (let i = 0; i < 500; i++) yield Buffer.alloc(100_000);
          })(),
        ),
    };
    finished = body.send(res, 200, { data: body.base64(big) }).catch((err: unknown) => err);
    await finished;
  };
  const controller = new AbortController();
  const res = await fetch(url, { signal: controller.signal });
  const reader = res.body!.getReader();
  await reader.read();
  controller.abort();
  expect(await finished).toBeUndefined();
});

test('small answers (sources that can be read whole, 1 MiB in all) are the same text, written in one piece', async () => {
  const files = [randomBytes(5), randomBytes(70_000)];
  let opened = 0;
  const whole = (bytes: Buffer): Base64Source => ({
    size: bytes.length,
    open: () => {
      opened++;
      return Readable.from([bytes]);
    },
    read: () => bytes,
  });
  handler = async (_req, res) => {
    const body = new StreamedJson();
    await body.send(res, 200, { a: body.base64(whole(files[0]!)), b: [body.base64(whole(files[1]!)), 'tail'] });
  };
  const res = await fetch(url);
  const text = await res.text();
  expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
  expect(text).toBe(JSON.stringify({ a: files[0]!.toString('base64'), b: [files[1]!.toString('base64'), 'tail'] }));
  expect(opened).toBe(0);

  // Over 1 MiB in all, the same sources are streamed.
  const big = randomBytes(1024 * 1024 + 1);
  handler = async (_req, res) => {
    const body = new StreamedJson();
    await body.send(res, 200, { data: body.base64(whole(big)) });
  };
  expect(await (await fetch(url)).text()).toBe(JSON.stringify({ data: big.toString('base64') }));
  expect(opened).toBe(1);

  // A small source that is not the size it said breaks the answer off too.
  failure = undefined;
  handler = async (_req, res) => {
    const body = new StreamedJson();
    await body.send(res, 200, { data: body.base64({ ...whole(files[0]!), size: 9 }) });
  };
  await expect(fetch(url).then((r) => r.text())).rejects.toThrow();
  expect(String(failure)).toContain('changed size');
});

test('pieces read into one reused buffer are sent right, and a client that goes away closes the source', async () => {
  let closed = 0;
  /** A reader that reuses one buffer for every piece, as the job files' reader does. */
  const reusing = (bytes: Buffer, piece: number): Base64Source => ({
    size: bytes.length,
    open: async function* () {
      const buffer = Buffer.alloc(piece);
      try {
        for (let i = 0; i < bytes.length; i += piece) yield buffer.subarray(0, bytes.copy(buffer, 0, i, i + piece));
      } finally {
        closed++;
      }
    },
  });
  const file = randomBytes(300_001);
  handler = async (_req, res) => {
    const body = new StreamedJson();
    await body.send(res, 200, { data: body.base64(reusing(file, 49_152)) });
  };
  expect(await fetch(url).then((r) => r.text())).toBe(JSON.stringify({ data: file.toString('base64') }));
  expect(closed).toBe(1);

  let finished!: Promise<unknown>;
  handler = async (_req, res) => {
    const body = new StreamedJson();
    finished = body.send(res, 200, { data: body.base64(reusing(Buffer.alloc(50_000_000), 49_152)) });
    await finished;
  };
  const controller = new AbortController();
  const reader = (await fetch(url, { signal: controller.signal })).body!.getReader();
  await reader.read();
  controller.abort();
  await finished;
  expect(closed).toBe(2);
});
