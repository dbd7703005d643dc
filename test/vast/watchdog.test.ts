// After load, ComfyUI must stay usable: an outage longer than COMFY_READY_TIMEOUT_S becomes the
// permanent error_msg, a shorter one (ComfyUI restarting) heals, and a CUDA fault is an error at
// once (PyWorker's health loop, reference §8).
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, until } from '../support/worker';
import { raisingNode } from '../support/workflows';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { envelopeText, postText, PUBLIC_URL, quickPayload, startVastWorker, type VastTestWorker } from './support/vast-worker';

const cudaFault = raisingNode('RaiseCudaFault', 'RuntimeError', 'CUDA error: an illegal memory access was encountered');

let sim: Simulator;
let fake: FakeAutoscaler;
let worker: VastTestWorker | undefined;

beforeEach(async () => {
  sim = await startSimulator({ extraNodes: { RaiseCudaFault: cudaFault } });
  fake = await startFakeAutoscaler();
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await fake.close();
  await sim.close();
});

/** A quickly loaded worker (cached score) whose websocket gives up after one quick retry. */
async function start(readyTimeoutS: string): Promise<VastTestWorker> {
  worker = await startVastWorker(
    sim.url,
    fake,
    { COMFY_READY_TIMEOUT_S: readyTimeoutS, WEBSOCKET_RECONNECT_ATTEMPTS: '1', WEBSOCKET_RECONNECT_DELAY_S: '0.1' },
    { cachedMaxPerf: 50 },
  );
  await until(() => fake.statusReports.some((r) => r.body.max_perf > 0), 5_000, 'loaded');
  return worker;
}

const errorMsg = () => fake.statusReports.find((r) => r.body.error_msg !== '')?.body.error_msg as string | undefined;
const request = (w: VastTestWorker, payload: unknown) =>
  postText(`${w.url}/generate/sync`, envelopeText(fake.route({ url: PUBLIC_URL }).text, payload));

test('ComfyUI gone for longer than COMFY_READY_TIMEOUT_S after load → permanent error report', async () => {
  const w = await start('2');
  const crashedAt = Date.now();
  await sim.crash();
  await until(() => errorMsg() !== undefined, 10_000, 'an error report');
  expect(errorMsg()).toMatch(/^ComfyUI unreachable for \d+ s after load: /);
  expect(Number(/for (\d+) s/.exec(errorMsg()!)![1])).toBeGreaterThanOrEqual(2);
  expect(Date.now() - crashedAt).toBeGreaterThanOrEqual(2_000);
  const health = await getJson(`${w.url}/health`);
  expect(health.status).toBe(503);
  expect(health.body).toMatchObject({ status: 'error', error_msg: errorMsg() });
  // The error is permanent: ComfyUI coming back does not clear it.
  await sim.restart();
  await until(async () => (await getJson(`${w.url}/health`)).body.comfyui.reachable === true, 5_000, 'ComfyUI back');
  expect((await getJson(`${w.url}/health`)).body.status).toBe('error');
  const res = await request(w, quickPayload());
  expect(res.status).toBe(503);
  expect(res.body.error).toContain('worker is in error state: ComfyUI unreachable');
});

test('a short outage (ComfyUI restarting, the websocket "down" meanwhile) heals: no error, requests served', async () => {
  const w = await start('3');
  const down = new Promise<string>((resolve) => w.comfy.session.once('down', resolve));
  const crashedAt = Date.now();
  await sim.crash();
  await down; // the websocket gave up: the session's "down"
  await sim.restart();
  await until(() => w.comfy.isReady, 5_000, 'reconnected');
  // Past the limit (3 s) and a few checks (every 0.75 s) since the crash: still no error.
  await new Promise((r) => setTimeout(r, Math.max(0, crashedAt + 5_000 - Date.now())));
  expect(errorMsg()).toBeUndefined();
  expect((await getJson(`${w.url}/health`)).body).toMatchObject({ status: 'healthy', error_msg: '' });
  const res = await request(w, quickPayload());
  expect(res.status).toBe(200);
  await until(() => fake.statusReports.some((r) => r.body.cur_perf === 1), 5_000, 'the request reported');
  expect(errorMsg()).toBeUndefined();
});

test('a CUDA fault (illegal memory access) → permanent error report right after the job', async () => {
  const w = await start('600');
  const res = await request(w, { input: { workflow_json: { '1': { class_type: 'RaiseCudaFault', inputs: {} } } } });
  expect(res.status).toBe(500);
  await until(() => errorMsg() !== undefined, 3_000, 'an error report');
  expect(errorMsg()).toMatch(/^GPU fault \(CUDA\), the machine needs a restart: .*illegal memory access/);
  const next = await request(w, quickPayload());
  expect(next.status).toBe(503);
});
