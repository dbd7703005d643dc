// POST /prompt whose answer is lost after ComfyUI queued the prompt (a dropped connection): the
// worker finds its prompt in ComfyUI and follows it, instead of failing or submitting twice.
import net from 'node:net';
import { startSimulator, type Simulator } from '../../simulator';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';
import { saveWorkflow } from '../support/workflows';

/** A TCP relay to the simulator that can swallow the answer to the next POST /prompt. */
async function relay(
  target: URL,
): Promise<{ url: string; dropNextPromptAnswer: boolean; dropNextPrompt: boolean; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { dropNextPromptAnswer: false, dropNextPrompt: false };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let dropping = false;
    client.on('data', (chunk) => {
      if (state.dropNextPrompt && chunk.toString('latin1').startsWith('POST /prompt ')) {
        state.dropNextPrompt = false;
        client.destroy(); // the request never reaches ComfyUI
        return;
      }
      if (state.dropNextPromptAnswer && chunk.toString('latin1').startsWith('POST /prompt ')) {
        state.dropNextPromptAnswer = false;
        dropping = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (dropping)
        client.destroy(); // ComfyUI answered; the worker never hears it
      else client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

let sim: Simulator;
let proxy: Awaited<ReturnType<typeof relay>>;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 20 });
  proxy = await relay(new URL(sim.url));
  worker = await startTestWorker(proxy.url);
});
afterAll(async () => {
  await worker?.stop();
  await proxy?.close();
  await sim?.close();
});

test('the answer to POST /prompt is lost: the job completes from the prompt ComfyUI queued, submitted once', async () => {
  const before = sim.prompts.length;
  proxy.dropNextPromptAnswer = true;
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('lost') } });
  expect(proxy.dropNextPromptAnswer).toBe(false); // the answer was really swallowed
  expect(res.status).toBe(200);
  expect(res.body.output[0].filename).toMatch(/^lost_/);
  expect(sim.prompts.length - before).toBe(1);
});

test('a POST /prompt that never reached ComfyUI: the job fails clearly after a few looks, nothing runs', async () => {
  const before = sim.prompts.length;
  proxy.dropNextPrompt = true;
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('never') } });
  expect(proxy.dropNextPrompt).toBe(false);
  expect(res.status).toBe(502);
  expect(res.body.error.code).toBe('comfy_connection');
  expect(sim.prompts.length).toBe(before);
  expect((await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('next') } })).status).toBe(200);
});
