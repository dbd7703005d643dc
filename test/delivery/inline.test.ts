// Inline (base64) delivery: the per-file cap, and partial results when a request accepts them.
import { startSimulator, type Simulator } from '../../worker/simulator';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';
import { saveWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({
    extraNodes: {
      SaveBytes: {
        schema: {
          input: { required: { size: ['INT', { default: 1, min: 1, max: 2 ** 31 }] } },
          input_order: { required: ['size'] },
          output: [],
          output_is_list: [],
          output_name: [],
          name: 'SaveBytes',
          display_name: 'SaveBytes',
          description: '',
          python_module: 'custom_nodes.test',
          category: 'test',
          output_node: true,
        },
        run: ({ inputs, promptId, writeFile }) => {
          const filename = `bytes_${promptId.slice(0, 8)}.bin`;
          writeFile('output', '', filename, Buffer.alloc(inputs.size as number, 1));
          return { ui: { files: [{ filename, subfolder: '', type: 'output' }] } };
        },
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
