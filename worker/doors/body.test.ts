// The job routes' body reader on a real HTTP server, with a real job files folder.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import express from 'express';
import { tempDir } from '../../test/support/tmp';
import { SpooledImage } from '../comfy/inputs';
import { JobFiles } from '../jobs/files';
import { jsonBody } from './body';

const files = new JobFiles(path.join(tempDir('body-'), 'jobs.db-files'));
const inputs = () => fs.readdirSync(path.join(files.root, 'inputs'));
let server: http.Server;
let url: string;
/** What the route saw, and a hold on the answer (so the spool is not yet released). */
let seen: unknown;
let hold: Promise<void> = Promise.resolve();

beforeAll(async () => {
  const app = express();
  const limit = 1_000_000;
  app.use(jsonBody({ maxBytes: limit, spool: () => files.spool(), wholeUpTo: 100, spoolAbove: 64 }, express.json({ limit })));
  app.post('/', async (req, res) => {
    seen = req.body;
    await hold;
    res.json({ ok: true });
  });
  app.use(
    (err: { status?: number; type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(err.status ?? 500).json({ type: err.type });
    },
  );
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** Sends `body` in pieces (chunked unless a length is given) and reads the answer. */
function post(
  body: Buffer,
  headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' },
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        const closing = res.headers.connection === 'close' ? { connection: 'close' } : {};
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), ...closing });
      });
    });
    req.once('error', reject);
    for (let i = 0; i < body.length; i += 1000) req.write(body.subarray(i, i + 1000));
    req.end();
  });
}

const imageBody = (text: string) => Buffer.from(JSON.stringify({ input: { images: [{ name: 'a', image: text }] } }));

test('a long image becomes a SpooledImage in the body; the file is the request’s until the answer is done', async () => {
  const bytes = Buffer.from('x'.repeat(3000));
  let release!: () => void;
  hold = new Promise((r) => (release = r));
  const answer = post(imageBody(bytes.toString('base64')));
  await until(() => seen !== undefined);
  const image = (seen as { input: { images: Array<{ image: SpooledImage }> } }).input.images[0]!.image;
  expect(image).toBeInstanceOf(SpooledImage);
  expect(fs.readFileSync(image.path).equals(bytes)).toBe(true);
  release();
  expect((await answer).status).toBe(200);
  // No job took it: deleted with the answer.
  await until(() => inputs().length === 0);
  seen = undefined;
  hold = Promise.resolve();
});

test('a duplicate key: the image that lost is deleted too', async () => {
  const a = Buffer.from('a'.repeat(300)).toString('base64');
  const text = `{"images": [{"image": "${a}"}], "images": [{"image": "${a}"}]}`;
  expect((await post(Buffer.from(text))).status).toBe(200);
  await until(() => inputs().length === 0);
});

test('over the limit without a Content-Length: 413 once it passes, the connection closed, no file left', async () => {
  const res = await post(imageBody('A'.repeat(1_200_000)));
  expect(res).toEqual({ status: 413, body: { type: 'entity.too.large' }, connection: 'close' });
  await until(() => inputs().length === 0);
});

test('a client that goes away mid-image leaves no file', async () => {
  const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } });
  req.on('error', () => undefined);
  req.write(imageBody('A'.repeat(200_000)).subarray(0, 100_000));
  await until(() => inputs().length === 1).catch(() => {
    throw new Error('never spooled: ' + inputs().join());
  });
  req.destroy();
  await until(() => inputs().length === 0);
});

test.each([
  ['an empty body', Buffer.alloc(0), 200, {}],
  ['a byte-order mark', Buffer.from('\ufeff{"a": 1}'), 200, { a: 1 }],
  ['a top-level string', Buffer.from(`"${'s'.repeat(200)}"`), 400, undefined],
  ['broken JSON', Buffer.from(`{"a": ${'1'.repeat(200)}`), 400, undefined],
])('%s, as express.json has it', async (_name, body, status, value) => {
  seen = undefined;
  const res = await post(body);
  expect(res.status).toBe(status);
  if (status === 200) expect(seen).toEqual(value);
  else expect(res.body.type).toBe('entity.parse.failed');
});

test('a gzip body goes to the fallback parser', async () => {
  seen = undefined;
  const body = gzipSync(Buffer.from(JSON.stringify({ zipped: true })));
  const res = await post(body, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
  expect(res.status).toBe(200);
  expect(seen).toEqual({ zipped: true });
});

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
