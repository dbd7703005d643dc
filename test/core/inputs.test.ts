// Input images by URL: downloaded with a size cap, refused for private addresses unless allowed,
// and an unreachable URL is a 400 naming the image.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { serve, type TestServer } from '../support/http-server';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const loadWorkflow = (name: string) => ({
  '1': { class_type: 'LoadImage', inputs: { image: name } },
  '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'fromurl' } },
});

let sim: Simulator;
let images: TestServer;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator();
  images = await serve((req, res) => {
    if (req.url === '/cat.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(PNG);
    } else if (req.url === '/slow.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      const timer = setInterval(() => res.write(Buffer.alloc(64)), 50);
      res.on('close', () => clearInterval(timer));
    } else if (req.url === '/huge.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(Buffer.alloc(3 * 1024 * 1024));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  // The image host is on 127.0.0.1, so private URLs must be allowed for these downloads.
  worker = await startTestWorker(sim.url, { ALLOW_PRIVATE_URLS: 'true', INPUT_DOWNLOAD_MAX_MB: '1' });
});
afterAll(async () => {
  await worker?.stop();
  await images?.close();
  await sim?.close();
});

const sync = (input: Record<string, unknown>) => postJson(`${worker.url}/generate/sync`, { input });

test('an http URL is downloaded and uploaded to ComfyUI', async () => {
  const res = await sync({
    workflow_json: loadWorkflow('cat.png'),
    images: [{ name: 'cat.png', image: `${images.url}/cat.png` }],
  });
  expect(res.status).toBe(200);
  expect(res.body.output[0].filename).toMatch(/^fromurl_/);
  // ComfyUI holds the very bytes the URL served, under the name the prompt's LoadImage uses.
  const prompt = sim.prompts.at(-1)!.body as { prompt: Record<string, { inputs: { image?: string } }> };
  const uploaded = prompt.prompt['1']!.inputs.image!;
  expect(readFileSync(join(sim.dataDir, 'input', uploaded)).equals(PNG)).toBe(true);
});

test('a URL answering 404 is a 400 naming the image', async () => {
  const res = await sync({
    workflow_json: loadWorkflow('gone.png'),
    images: [{ name: 'gone.png', image: `${images.url}/gone.png` }],
  });
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('input_image');
  expect(res.body.message).toContain('"gone.png" could not be downloaded: answered HTTP 404');
});

test('an unreachable host is a 400 naming the image', async () => {
  const res = await sync({
    workflow_json: loadWorkflow('x.png'),
    images: [{ name: 'x.png', image: 'http://127.0.0.1:1/x.png' }],
  });
  expect(res.status).toBe(400);
  expect(res.body.message).toContain('"x.png" could not be downloaded');
});

test('a download over INPUT_DOWNLOAD_MAX_MB is refused', async () => {
  const res = await sync({
    workflow_json: loadWorkflow('huge.png'),
    images: [{ name: 'huge.png', image: `${images.url}/huge.png` }],
  });
  expect(res.status).toBe(400);
  expect(res.body.message).toContain('larger than the 1048576-byte limit');
});

test('without ALLOW_PRIVATE_URLS a loopback URL is refused before anything is queued', async () => {
  const strict = await startTestWorker(sim.url);
  try {
    const before = sim.prompts.length;
    const res = await postJson(`${strict.url}/generate/sync`, {
      input: { workflow_json: loadWorkflow('cat.png'), images: [{ name: 'cat.png', image: `${images.url}/cat.png` }] },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ field: 'input.images[0].image' });
    expect(res.body.error.message).toContain('private');
    expect(sim.prompts.length).toBe(before);
  } finally {
    await strict.stop();
  }
});

test('a download that trickles is cut off at INPUT_DOWNLOAD_TIMEOUT_S, counting the whole body', async () => {
  const quick = await startTestWorker(sim.url, { ALLOW_PRIVATE_URLS: 'true', INPUT_DOWNLOAD_TIMEOUT_S: '0.5' });
  try {
    const started = Date.now();
    const res = await postJson(`${quick.url}/generate/sync`, {
      input: { workflow_json: loadWorkflow('slow.png'), images: [{ name: 'slow.png', image: `${images.url}/slow.png` }] },
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain('"slow.png" could not be downloaded: took longer than 0.5 s');
    expect(Date.now() - started).toBeLessThan(3_000);
  } finally {
    await quick.stop();
  }
});
