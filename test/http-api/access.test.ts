// API_KEY and ADMIN_API_KEY: which routes need which key, 401 JSON for a missing or wrong one.
import WebSocket from 'ws';
import { startSimulator, type Simulator } from '../../simulator';
import { saveWorkflow } from '../support/workflows';
import { callJson, startTestWorker, type TestWorker } from '../support/worker';
import { waitForStatus } from './support';

const API_KEY = 'api-key-0123456789';
const ADMIN_KEY = 'admin-key-9876543210';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(() => sim?.close());

describe('API_KEY and ADMIN_API_KEY set', () => {
  let worker: TestWorker;
  beforeAll(async () => {
    worker = await startTestWorker(sim.url, { API_KEY, ADMIN_API_KEY: ADMIN_KEY, COMFY_PROXY: 'true' });
  });
  afterAll(() => worker?.stop());

  test('/health is open', async () => {
    expect((await callJson('GET', `${worker.url}/health`)).status).toBe(200);
  });

  test.each([
    ['POST', '/run'],
    ['GET', '/status/x'],
    ['GET', '/stats'],
    ['POST', '/generate'],
    ['POST', '/generate/sync'],
    ['GET', '/result/x'],
    ['POST', '/cancel/x'],
    ['GET', '/queue-info'],
    ['GET', '/metrics'],
    ['GET', '/comfy/system_stats'],
    ['GET', '/no-such-route'],
  ])('%s %s without a key, or with a wrong one: 401 JSON', async (method, path) => {
    const body = method === 'POST' ? { workflow: saveWorkflow() } : undefined;
    const missing = await callJson(method, `${worker.url}${path}`, body);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    expect(missing.body.error).toMatchObject({ code: 'unauthorized', status: 401, field: 'Authorization' });
    expect(missing.body.error.message).toContain('Bearer <API_KEY>');
    for (const headers of [bearer('wrong'), bearer(`${API_KEY}x`), bearer(ADMIN_KEY), { authorization: API_KEY }]) {
      const wrong = await callJson(method, `${worker.url}${path}`, body, headers);
      expect(wrong.status).toBe(401);
      expect(JSON.stringify(wrong.body)).not.toContain(API_KEY);
    }
  });

  test('the right key passes', async () => {
    const run = await callJson('POST', `${worker.url}/run`, { workflow: saveWorkflow('auth') }, bearer(API_KEY));
    expect(run.status).toBe(200);
    const done = await waitForStatus(worker.url, run.body.job_id, undefined, 10_000, bearer(API_KEY));
    expect(done.status).toBe('completed');
    expect((await callJson('GET', `${worker.url}/stats`, undefined, { authorization: `bearer ${API_KEY}` })).status).toBe(200);
    expect((await callJson('GET', `${worker.url}/metrics`, undefined, bearer(API_KEY))).status).toBe(200);
    expect((await callJson('GET', `${worker.url}/comfy/system_stats`, undefined, bearer(API_KEY))).status).toBe(200);
  });

  test('/admin/* needs ADMIN_API_KEY, not API_KEY, however the path is spelled', async () => {
    for (const path of ['/admin/cleanup', '/ADMIN/cleanup', '/admin/cleanup/', '/admin/reset-stuck']) {
      const withApiKey = await callJson('POST', `${worker.url}${path}`, {}, bearer(API_KEY));
      expect(withApiKey.status).toBe(401);
      expect(withApiKey.body.error.message).toContain('ADMIN_API_KEY');
      expect((await callJson('POST', `${worker.url}${path}`, {}, bearer(ADMIN_KEY))).status).toBe(200);
    }
    expect((await callJson('DELETE', `${worker.url}/admin/job/x`, undefined, bearer(API_KEY))).status).toBe(401);
    expect((await callJson('DELETE', `${worker.url}/admin/job/x`, undefined, bearer(ADMIN_KEY))).status).toBe(404);
  });

  test('websocket upgrades through /comfy/ need the key too', async () => {
    const open = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${worker.url.replace('http', 'ws')}/comfy/ws?clientId=t`, { headers });
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('error', () => resolve(-1));
      });
    expect(await open({})).toBe(401);
    expect(await open(bearer('wrong'))).toBe(401);
    expect(await open(bearer(API_KEY))).toBe(101);
  });
});

test('ADMIN_API_KEY alone: job routes open, /admin/* closed', async () => {
  const worker = await startTestWorker(sim.url, { ADMIN_API_KEY: ADMIN_KEY });
  try {
    expect((await callJson('GET', `${worker.url}/stats`)).status).toBe(200);
    expect((await callJson('POST', `${worker.url}/admin/cleanup`, {})).status).toBe(401);
    expect((await callJson('POST', `${worker.url}/admin/cleanup`, {}, bearer(ADMIN_KEY))).status).toBe(200);
  } finally {
    await worker.stop();
  }
});

test('API_KEY alone: /admin/* takes API_KEY', async () => {
  const worker = await startTestWorker(sim.url, { API_KEY });
  try {
    expect((await callJson('POST', `${worker.url}/admin/cleanup`, {})).status).toBe(401);
    expect((await callJson('POST', `${worker.url}/admin/cleanup`, {}, bearer(API_KEY))).status).toBe(200);
  } finally {
    await worker.stop();
  }
});

test('no keys: everything is open', async () => {
  const worker = await startTestWorker(sim.url);
  try {
    expect((await callJson('GET', `${worker.url}/stats`)).status).toBe(200);
    expect((await callJson('POST', `${worker.url}/admin/cleanup`, {})).status).toBe(200);
  } finally {
    await worker.stop();
  }
});
