// Inline (base64) delivery: the per-file cap, and partial results when a request accepts them.
import { startSimulator, type Simulator } from '../../worker/simulator';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';
import { fileSaverNode, saveWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({
    extraNodes: { SaveBytes: fileSaverNode('SaveBytes') },
  });
  worker = await startTestWorker(sim.url, { OUTPUT_BASE64_MAX_BYTES: '100000' });
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

const workflow = saveWorkflow('small', { '9': { class_type: 'SaveBytes', inputs: { size: 250_000 } } });

test('a file over OUTPUT_BASE64_MAX_BYTES fails the job, naming the file and the cap', async () => {
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: workflow } });
  expect(res.status).toBe(500);
  expect(res.body.error.code).toBe('output_error');
  expect(res.body.message).toMatch(
    /1 of 2 output files could not be delivered: bytes_[0-9a-f]{8}\.bin: file size 250000 exceeds OUTPUT_BASE64_MAX_BYTES \(100000\); not inlined/,
  );
});

test('with allow_partial_results the job completes with the error on that output', async () => {
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: workflow, allow_partial_results: true } });
  expect(res.status).toBe(200);
  const byNode = Object.fromEntries(res.body.output.map((o: { node_id: string }) => [o.node_id, o]));
  expect(byNode['2'].data.length).toBeGreaterThan(0);
  expect(byNode['9']).toMatchObject({
    output_type: 'files',
    error: 'file size 250000 exceeds OUTPUT_BASE64_MAX_BYTES (100000); not inlined',
  });
  expect(byNode['9'].data).toBeUndefined();
});
