// Output files are opened when ComfyUI announces them (`executed`), while the prompt runs on, and
// each is still read exactly once, byte for byte what /view serves; a run that fails after a file
// was announced closes it unread. The mechanism is in worker/comfy/early-outputs.ts.
import { startSimulator, type Simulator } from '../../simulator';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';
import { fileSaverNode, raisingNode, saveWorkflow, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;
beforeAll(async () => {
  sim = await startSimulator({
    outputPaddingBytes: 200_000,
    nodeDelayMs: { ImageScale: 300 },
    extraNodes: { SaveBytes: fileSaverNode('SaveBytes', 'bytes'), Boom: raisingNode('Boom', 'RuntimeError', 'boom') },
  });
  worker = await startTestWorker(sim.url);
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

const since = (start: number) => sim.requests.slice(start);

async function viewBytes(out: { filename: string; subfolder: string; type: string }): Promise<Buffer> {
  const query = new URLSearchParams({ filename: out.filename, subfolder: out.subfolder, type: out.type });
  return Buffer.from(await (await fetch(`${sim.url}/view?${query}`)).arrayBuffer());
}

test('a file announced mid-run is fetched while the run goes on, once, and delivered byte for byte', async () => {
  const start = sim.requests.length;
  // SaveBytes (no inputs) runs first and announces its file; ImageScale then takes 300 ms.
  const workflow = { ...slowWorkflow('early'), '9': { class_type: 'SaveBytes', inputs: { size: 300_000 } } };
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: workflow } });
  expect(res.status).toBe(200);
  const log = since(start);
  const views = log.filter((r) => r.path === '/view');
  const history = log.find((r) => r.path.startsWith('/history/'))!;
  expect(views).toHaveLength(2); // one per file, no second read
  expect(history.at - views[0]!.at).toBeGreaterThanOrEqual(250);
  const outputs = res.body.output as Array<{ filename: string; subfolder: string; type: string; data: string }>;
  expect(outputs).toHaveLength(2);
  for (const out of outputs) expect(Buffer.from(out.data, 'base64').equals(await viewBytes(out))).toBe(true);
  expect(outputs.map((o) => Buffer.from(o.data, 'base64').length)).toContain(300_000);
});

/** SaveBytes announces its file, then Boom raises. */
const failing = (prefix: string) => ({
  '3': { class_type: 'SaveBytes', inputs: { size: 1000 + prefix.length } },
  '4': { class_type: 'Boom', inputs: {} },
});

test('a run that fails after announcing a file fails as usual, and the files it opened do not hold up later runs', async () => {
  const start = sim.requests.length;
  const res = await postJson(`${worker.url}/generate/sync`, {
    input: { workflow_json: failing('fails') },
  });
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(JSON.stringify(res.body)).toMatch(/boom/);
  // More runs than the client has sockets (16): a held file left open would block them.
  for (let i = 0; i < 20; i++) {
    const next = await postJson(`${worker.url}/generate/sync`, {
      input: { workflow_json: failing(`after${i}`) },
    });
    expect(next.status).toBeGreaterThanOrEqual(400);
  }
  const ok = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('ok') } });
  expect(ok.status).toBe(200);
  expect(since(start).filter((r) => r.path === '/view')).toHaveLength(22);
});
