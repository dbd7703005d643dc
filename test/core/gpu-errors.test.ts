// After an out-of-memory error the worker asks ComfyUI to free memory and keeps serving; after a
// CUDA fault (which does not heal) /health turns unhealthy so the platform replaces the machine.
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { raisingNode, saveWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({
    extraNodes: {
      RaiseOOM: raisingNode(
        'RaiseOOM',
        'torch.OutOfMemoryError',
        'Allocation on device 0 would exceed allowed memory. (out of memory)',
      ),
      RaiseCudaFault: raisingNode('RaiseCudaFault', 'RuntimeError', 'CUDA error: an illegal memory access was encountered'),
      RaiseCudaConfig: raisingNode('RaiseCudaConfig', 'RuntimeError', 'CUDA error: invalid configuration argument'),
    },
  });
  worker = await startTestWorker(sim.url);
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

const sync = (workflow: unknown) => postJson(`${worker.url}/generate/sync`, { input: { workflow_json: workflow } });

test('out of memory: the job fails naming it, ComfyUI is asked to free memory, the next job runs', async () => {
  const freesBefore = sim.requests.filter((r) => r.path === '/free').length;
  const res = await sync({ '1': { class_type: 'RaiseOOM', inputs: {} } });
  expect(res.status).toBe(500);
  expect(res.body.error.details).toMatchObject({ node_type: 'RaiseOOM', exception_type: 'torch.OutOfMemoryError' });
  await until(
    () => sim.requests.filter((r) => r.method === 'POST' && r.path === '/free').length === freesBefore + 1,
    5_000,
    'POST /free',
  );
  expect((await getJson(`${worker.url}/health`)).status).toBe(200);
  expect((await sync(saveWorkflow('after_oom'))).status).toBe(200);
});

test('another CUDA error fails only its job', async () => {
  const res = await sync({ '1': { class_type: 'RaiseCudaConfig', inputs: {} } });
  expect(res.status).toBe(500);
  expect((await getJson(`${worker.url}/health`)).status).toBe(200);
  expect((await sync(saveWorkflow('after_cuda_config'))).status).toBe(200);
});

test('a CUDA fault marks the GPU faulty: /health is 503 and says why; no new job runs on it', async () => {
  const res = await sync({ '1': { class_type: 'RaiseCudaFault', inputs: {} } });
  expect(res.status).toBe(500);
  const health = await getJson(`${worker.url}/health`);
  expect(health.status).toBe(503);
  expect(health.body.comfyui.gpu_fault).toContain('illegal memory access');
  const before = sim.prompts.length;
  const refused = await sync(saveWorkflow('on_faulty_gpu'));
  expect(refused.status).toBe(503);
  expect(refused.body.error.message).toContain('GPU fault');
  // An async job is kept, pending, for a healthy process to run.
  const queued = await postJson(`${worker.url}/generate`, {
    input: { request_id: 'kept-for-later', workflow_json: saveWorkflow('later') },
  });
  expect(queued.status).toBe(202);
  await new Promise((r) => setTimeout(r, 300));
  expect((await getJson(`${worker.url}/result/kept-for-later`)).body.status).toBe('pending');
  expect(sim.prompts.length).toBe(before);
});
