// COMFY_PROXY=true exposes ComfyUI's own routes, websocket included, under /comfy/.
import WebSocket from 'ws';
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, postJson, startTestWorker, type TestWorker } from '../support/worker';

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim?.close();
});

describe('with COMFY_PROXY=true', () => {
  let worker: TestWorker;
  beforeAll(async () => {
    worker = await startTestWorker(sim.url, { COMFY_PROXY: 'true' });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  test('HTTP routes pass through', async () => {
    const res = await getJson(`${worker.url}/comfy/object_info/EmptyImage`);
    expect(res.status).toBe(200);
    expect(res.body.EmptyImage.input.required.width[0]).toBe('INT');
    const stats = await getJson(`${worker.url}/comfy/system_stats`);
    expect(stats.body.system.comfyui_version).toBeDefined();
  });

  test('POST bodies pass through untouched', async () => {
    const res = await postJson(`${worker.url}/comfy/prompt`, '{not json');
    expect(res.status).toBe(500);
    expect(res.body).toContain('Server got itself in trouble');
  });

  test('websocket upgrades pass through', async () => {
    const ws = new WebSocket(`${worker.url.replace('http', 'ws')}/comfy/ws?clientId=proxy-test`);
    const first = await new Promise<any>((resolve, reject) => {
      ws.once('message', (data) => resolve(JSON.parse(data.toString())));
      ws.once('error', reject);
    });
    ws.close();
    expect(first).toMatchObject({ type: 'status', data: { sid: 'proxy-test' } });
  });
});

test('without COMFY_PROXY the routes do not exist', async () => {
  const worker = await startTestWorker(sim.url);
  try {
    expect((await getJson(`${worker.url}/comfy/system_stats`)).status).toBe(404);
  } finally {
    await worker.stop();
  }
});

describe('stopping with sockets open', () => {
  const stopsWithin = async (stop: () => Promise<void>, ms: number) =>
    Promise.race([stop().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

  test('an open proxied websocket does not hold the stop', async () => {
    const worker = await startTestWorker(sim.url, { COMFY_PROXY: 'true' });
    const ws = new WebSocket(`${worker.url.replace('http', 'ws')}/comfy/ws?clientId=ui`);
    await new Promise((r) => ws.once('open', r));
    const closed = new Promise((r) => ws.once('close', r));
    expect(await stopsWithin(() => worker.stop(), 3_000)).toBe(true);
    await closed;
  });

  test('an upgrade to any other path is refused, not left hanging', async () => {
    const worker = await startTestWorker(sim.url, { COMFY_PROXY: 'true' });
    try {
      const ws = new WebSocket(`${worker.url.replace('http', 'ws')}/elsewhere`);
      const status = await new Promise<number | undefined>((resolve) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode));
        ws.once('error', () => resolve(undefined));
      });
      expect(status).toBe(404);
    } finally {
      expect(await stopsWithin(() => worker.stop(), 3_000)).toBe(true);
    }
  });
});
