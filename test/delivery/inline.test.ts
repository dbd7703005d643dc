// Inline (base64) delivery: the per-file cap, and partial results when a request accepts them.
import { startSimulator, type Simulator } from '../../simulator';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';
import { fileSaverNode, saveWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({
    extraNodes: {
      SaveBytes: fileSaverNode('SaveBytes'),
      // Lists a file it never wrote, as a node whose file was removed before the worker read it.
      ListMissingFile: {
        schema: { ...fileSaverNode('ListMissingFile').schema, input: { required: {} }, input_order: { required: [] } },
        run: () => ({ ui: { files: [{ filename: 'ghost.bin', subfolder: '', type: 'output' }] } }),
      },
    },
  });
  worker = await startTestWorker(sim.url, { OUTPUT_BASE64_MAX_BYTES: '100000' });
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

const workflow = saveWorkflow('small', { '9': { class_type: 'SaveBytes', inputs: { size: 250_000 } } });

test('a file over OUTPUT_BASE64_MAX_BYTES is reported on its output; the job completes with the others', async () => {
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: workflow } });
  expect(res.status).toBe(200);
  const byNode = Object.fromEntries(res.body.output.map((o: { node_id: string }) => [o.node_id, o]));
  expect(byNode['2'].data.length).toBeGreaterThan(0);
  expect(byNode['9']).toMatchObject({
    output_type: 'files',
    error: 'file size 250000 exceeds OUTPUT_BASE64_MAX_BYTES (100000); not inlined',
  });
  expect(byNode['9'].data).toBeUndefined();
});

test('a file missing on ComfyUI fails the job, naming it; with allow_partial_results the job completes', async () => {
  const missing = saveWorkflow('present', { '9': { class_type: 'ListMissingFile', inputs: {} } });
  const strict = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: missing } });
  expect(strict.status).toBe(500);
  expect(strict.body.error.code).toBe('output_error');
  expect(strict.body.message).toContain(
    '1 of 2 output files could not be delivered: ghost.bin: Output ghost.bin is missing on ComfyUI',
  );

  const partial = await postJson(`${worker.url}/generate/sync`, {
    input: { workflow_json: missing, allow_partial_results: true },
  });
  expect(partial.status).toBe(200);
  const byNode = Object.fromEntries(partial.body.output.map((o: { node_id: string }) => [o.node_id, o]));
  expect(byNode['2'].data.length).toBeGreaterThan(0);
  expect(byNode['9']).toMatchObject({ filename: 'ghost.bin', error: expect.stringContaining('missing on ComfyUI') });
});

test('an output answered from its file (over 1 MiB) is recorded before the waiting caller is answered', async () => {
  const big = await startTestWorker(sim.url);
  const seen: string[] = [];
  big.events.on('completing', () => seen.push('completing'));
  big.events.on('finished', () => seen.push('finished'));
  try {
    const size = 1024 * 1024 + 1;
    const res = await postJson(`${big.url}/generate/sync`, {
      input: { workflow_json: { '1': { class_type: 'SaveBytes', inputs: { size } } } },
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(res.body.output[0].data, 'base64')).toEqual(Buffer.alloc(size, 7));
    // Streamed from a file the store could delete: no answer before the row.
    expect(seen).toEqual(['finished']);
  } finally {
    await big.stop();
  }
});
