// POST /generate/sync on the Vast door: signatures under every scheme (forged, tampered,
// replayed, unsigned → 401), the envelope's 422 bodies, sessions, the model's own errors, and the
// routes' framework answers. Workers start with a cached benchmark so they are ready at once.
import { generateKeyPairSync } from 'node:crypto';
import { startSimulator, type Simulator } from '../../simulator';
import fs from 'node:fs';
import path from 'node:path';
import { loadWorkflow, paddedPng } from '../support/images';
import { until } from '../support/worker';
import { signedMessage, startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { envelopeText, postText, PUBLIC_URL, quickPayload, startVastWorker, type VastTestWorker } from './support/vast-worker';

let sim: Simulator;
let fake: FakeAutoscaler;
let anyWorker: VastTestWorker;
const logLines: string[] = [];

const ready = (fake: FakeAutoscaler) => until(() => fake.statusReports.some((r) => r.body.max_perf > 0), 10_000, 'worker loaded');

beforeAll(async () => {
  sim = await startSimulator();
  fake = await startFakeAutoscaler();
  anyWorker = await startVastWorker(sim.url, fake, {}, { cachedMaxPerf: 100, logLines });
  await ready(fake);
});
afterAll(async () => {
  await anyWorker?.stop();
  await fake?.close();
  await sim?.close();
});

const send = (worker: VastTestWorker, authText: string, payload: unknown = quickPayload()) =>
  postText(`${worker.url}/generate/sync`, envelopeText(authText, payload));

describe('signatures with VAST_SIGNATURE_SCHEME=any (the default)', () => {
  test('url-only, all-fields and legacy-fields signatures are accepted', async () => {
    for (const scheme of ['url', 'fields', 'legacy-fields'] as const) {
      const res = await send(anyWorker, fake.route({ url: PUBLIC_URL, scheme }).text);
      expect({ scheme, status: res.status }).toEqual({ scheme, status: 200 });
      expect(res.body.status).toBe('completed');
    }
  });

  test('all-fields keeps Python number formatting: cost 100.0 is signed as 100.0, 1e-05 as 1e-05', async () => {
    for (const cost of ['100.0', '1e-05', '1000', '0.5']) {
      const res = await send(anyWorker, fake.route({ url: PUBLIC_URL, scheme: 'fields', cost }).text);
      expect({ cost, status: res.status }).toEqual({ cost, status: 200 });
    }
  });

  test('a forged signature (another key) → 401 with an empty body, and a log line with the message checked', async () => {
    const { privateKey: other } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const route = fake.route({ url: PUBLIC_URL, scheme: 'fields', reqnum: 777, requestIdx: 9001, key: other });
    const res = await send(anyWorker, route.text);
    expect(res.status).toBe(401);
    expect(res.text).toBe('');
    const line = logLines.map((l) => JSON.parse(l)).find((l) => l.msg?.startsWith('signature check failed') && l.reqnum === 777);
    expect(line).toBeDefined();
    const expected = signedMessage('fields', {
      url: PUBLIC_URL,
      cost: '100.0',
      endpoint: 'comfy-endpoint',
      reqnum: 777,
      requestIdx: 9001,
    });
    expect(line.tried.map((t: { message: string }) => t.message)).toContain(expected);
    expect(line.signature_b64).toBe(route.auth.signature);
    // Never key material.
    expect(logLines.join('\n')).not.toMatch(/BEGIN (RSA )?(PUBLIC|PRIVATE) KEY/);
  });

  test('tampered auth_data → 401', async () => {
    const fields = fake.route({ url: PUBLIC_URL, scheme: 'fields', reqnum: 300 });
    const tamperedReqnum = fields.text.replace('"reqnum": 300', '"reqnum": 301');
    expect((await send(anyWorker, tamperedReqnum)).status).toBe(401);
    const tamperedCost = fields.text.replace('"cost": 100.0', '"cost": 100');
    expect((await send(anyWorker, tamperedCost)).status).toBe(401);
    const url = fake.route({ url: PUBLIC_URL, scheme: 'url' });
    expect((await send(anyWorker, url.text.replace(PUBLIC_URL, 'http://127.0.0.1:40124'))).status).toBe(401);
  });

  test('a replayed field-signed request → 401 (the first use passes)', async () => {
    const once = fake.route({ url: PUBLIC_URL, scheme: 'fields', reqnum: 2000 });
    expect((await send(anyWorker, once.text)).status).toBe(200);
    expect((await send(anyWorker, once.text)).status).toBe(401);
    // A fresh signature whose reqnum is far below the highest seen is a replay too.
    expect((await send(anyWorker, fake.route({ url: PUBLIC_URL, scheme: 'fields', reqnum: 1800 }).text)).status).toBe(401);
    expect((await send(anyWorker, fake.route({ url: PUBLIC_URL, scheme: 'fields', reqnum: 1950 }).text)).status).toBe(200);
  });

  test('unsigned requests → 401 (empty or garbage signature)', async () => {
    const route = fake.route({ url: PUBLIC_URL });
    const empty = route.text.replace(/"signature": "[^"]*"/, '"signature": ""');
    expect((await send(anyWorker, empty)).status).toBe(401);
    const garbage = route.text.replace(/"signature": "[^"]*"/, '"signature": "bm90IGEgc2lnbmF0dXJl"');
    expect((await send(anyWorker, garbage)).status).toBe(401);
  });

  test('rejections are reported: rej_load and Rejected items in /delete_requests/', async () => {
    const { privateKey: other } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const before = fake.statusReports.length;
    const res = await send(anyWorker, fake.route({ url: PUBLIC_URL, requestIdx: 4711, key: other }).text);
    expect(res.status).toBe(401);
    await until(() => fake.statusReports.slice(before).some((r) => r.body.rej_load >= 1), 5_000, 'rej_load report');
    await until(
      () => fake.deleteReports.some((r) => r.body.requests.some((i: any) => i.request_idx === 4711)),
      5_000,
      'delete item',
    );
    const report = fake.deleteReports.find((r) => r.body.requests.some((i: any) => i.request_idx === 4711))!;
    const item = report.body.requests.find((i: any) => i.request_idx === 4711);
    expect(item).toMatchObject({ success: false, status: 'Rejected', work_started_at: 0, work_completed_at: 0 });
    expect(report.raw).toMatch(
      /"request_idx": 4711, "success": false, "status": "Rejected", "entered_queue_at": \d+\.\d+, "work_started_at": 0\.0, "work_completed_at": 0\.0/,
    );
  });
});

describe('other schemes', () => {
  test('fields only: a url-only signature → 401, a field signature → 200', async () => {
    const f = await startFakeAutoscaler();
    const w = await startVastWorker(sim.url, f, { VAST_SIGNATURE_SCHEME: 'fields' }, { cachedMaxPerf: 100 });
    try {
      await ready(f);
      expect((await send(w, f.route({ url: PUBLIC_URL, scheme: 'url' }).text)).status).toBe(401);
      expect((await send(w, f.route({ url: PUBLIC_URL, scheme: 'legacy-fields' }).text)).status).toBe(401);
      expect((await send(w, f.route({ url: PUBLIC_URL, scheme: 'fields' }).text)).status).toBe(200);
    } finally {
      await w.stop();
      await f.close();
    }
  });

  test('url only: a field signature → 401, a url-only one → 200 (and may repeat: no replay guard)', async () => {
    const f = await startFakeAutoscaler();
    const w = await startVastWorker(sim.url, f, { VAST_SIGNATURE_SCHEME: 'url' }, { cachedMaxPerf: 100 });
    try {
      await ready(f);
      expect((await send(w, f.route({ url: PUBLIC_URL, scheme: 'fields' }).text)).status).toBe(401);
      const url = f.route({ url: PUBLIC_URL, scheme: 'url' }).text;
      expect((await send(w, url)).status).toBe(200);
      expect((await send(w, url)).status).toBe(200);
    } finally {
      await w.stop();
      await f.close();
    }
  });

  test('UNSECURED=true: no check, and no public key fetch', async () => {
    const f = await startFakeAutoscaler();
    const w = await startVastWorker(sim.url, f, { UNSECURED: 'true' }, { cachedMaxPerf: 100 });
    try {
      await ready(f);
      const garbage = f.route({ url: PUBLIC_URL }).text.replace(/"signature": "[^"]*"/, '"signature": "AAAA"');
      expect((await send(w, garbage)).status).toBe(200);
      expect(f.hits.some((h) => h.path === '/pubkey/')).toBe(false);
    } finally {
      await w.stop();
      await f.close();
    }
  });
});

describe('the envelope', () => {
  const url = () => `${anyWorker.url}/generate/sync`;

  test('body that is not JSON → 422 {"error":"invalid JSON"}', async () => {
    const res = await postText(url(), '{"auth_data": ');
    expect(res.status).toBe(422);
    expect(res.body).toEqual({ error: 'invalid JSON' });
  });

  test('missing fields → 422 with the field map', async () => {
    const auth = fake.route({ url: PUBLIC_URL }).auth;
    delete auth.signature;
    const res = await postText(url(), JSON.stringify({ auth_data: auth }));
    expect(res.status).toBe(422);
    expect(res.body).toEqual({ auth_data: { signature: 'missing parameter' }, payload: 'field missing' });
    const none = await postText(url(), '{}');
    expect(none.body).toEqual({ auth_data: 'field missing', payload: 'field missing' });
  });

  test('malformed fields → 422 naming each', async () => {
    const res = await postText(
      url(),
      JSON.stringify({
        auth_data: { cost: true, endpoint: 'e', reqnum: 'four', request_idx: 1.5, signature: 'x', url: 7 },
        payload: [],
      }),
    );
    expect(res.status).toBe(422);
    expect(res.body).toEqual({
      auth_data: {
        cost: 'must be a number',
        reqnum: 'must be an integer',
        request_idx: 'must be an integer',
        url: 'must be a string',
      },
      payload: { data: 'payload must be a dictionary' },
    });
    const notDict = await postText(url(), JSON.stringify({ auth_data: 'x', payload: {} }));
    expect(notDict.body).toEqual({ auth_data: { data: 'auth_data must be a dictionary' } });
  });

  test('a session id → 410 {"error":"invalid session"} (ComfyUI has no sessions)', async () => {
    const res = await postText(url(), envelopeText(fake.route({ url: PUBLIC_URL }).text, quickPayload(), 'session-1'));
    expect(res.status).toBe(410);
    expect(res.body).toEqual({ error: 'invalid session' });
  });

  test("the payload's own mistakes are the model's answer: 400 naming the field, counted as an error", async () => {
    const res = await send(anyWorker, fake.route({ url: PUBLIC_URL, requestIdx: 6100 }).text, { input: {} });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_request', field: 'input.workflow_json' });
    expect(res.body.error.message).toContain('Must provide either workflow_json OR modifier');
    await until(
      () => fake.deleteReports.some((r) => r.body.requests.some((i: any) => i.request_idx === 6100)),
      5_000,
      'delete item',
    );
    const item = fake.deleteReports.flatMap((r) => r.body.requests).find((i: any) => i.request_idx === 6100);
    expect(item).toMatchObject({ status: 'Error', success: false });
  });

  test('a failed workflow answers with its failure status (not 200)', async () => {
    const bad = { input: { workflow_json: { '1': { class_type: 'NoSuchNode', inputs: {} } } } };
    const res = await send(anyWorker, fake.route({ url: PUBLIC_URL }).text, bad);
    expect(res.status).toBe(400);
    expect(res.body.status).toBe('failed');
  });

  test('a large input image is decoded while the body is read; the signed numbers keep their tokens', async () => {
    const image = await paddedPng(2_000_000);
    const payload = {
      input: {
        workflow_json: loadWorkflow('vast-in.png', 'vast_in'),
        images: [{ name: 'vast-in.png', image: image.toString('base64') }],
      },
    };
    // (Earlier tests saw reqnum 2000: a field signature below 1900 would be a replay.)
    const route = fake.route({ url: PUBLIC_URL, scheme: 'fields', cost: '100.0', reqnum: 5000, requestIdx: 5000 });
    const res = await send(anyWorker, route.text, payload);
    expect(res.status).toBe(200);
    expect(res.body.output[0].filename).toMatch(/^vast_in_/);
    expect(fs.readFileSync(path.join(sim.dataDir, 'input', 'vast-in.png')).equals(image)).toBe(true);

    // JSON broken inside the image (a raw control character) is still invalid JSON.
    const broken = envelopeText(fake.route({ url: PUBLIC_URL }).text, {
      input: { images: [{ name: 'x.png', image: 'IMAGE' }] },
    }).replace('IMAGE', `${'A'.repeat(100_000)}\u0001`);
    const refused = await postText(url(), broken);
    expect(refused.status).toBe(422);
    expect(refused.body).toEqual({ error: 'invalid JSON' });
  });

  test('wrong method → 405, unknown route → 404', async () => {
    const get = await fetch(url());
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const unknown = await fetch(`${anyWorker.url}/nope`);
    expect(unknown.status).toBe(404);
  });
});
