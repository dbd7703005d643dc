// ComfyUI runs one prompt at a time: the worker keeps at most one more of its prompts waiting in
// ComfyUI's queue (so ComfyUI never idles between jobs), and cancels touch only its own prompts.
import WebSocket from 'ws';
import { startSimulator, type Simulator } from '../../simulator';
import { postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 20 });
  worker = await startTestWorker(sim.url, { JOB_TIMEOUT_S: '2' });
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

test('concurrent requests keep ComfyUI busy with at most two prompts: one executing, the next queued', async () => {
  // ComfyUI broadcasts its queue length (pending + running) to every socket.
  const watcher = new WebSocket(`${sim.url.replace('http', 'ws')}/ws?clientId=queue-watcher`);
  const lengths: number[] = [];
  watcher.on('message', (data, binary) => {
    if (binary) return;
    const msg = JSON.parse(data.toString()) as { type: string; data: { status?: { exec_info?: { queue_remaining?: number } } } };
    const n = msg.data.status?.exec_info?.queue_remaining;
    if (msg.type === 'status' && typeof n === 'number') lengths.push(n);
  });
  await new Promise((r) => watcher.once('open', r));
  try {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow(`burst${i}`) } }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(lengths.filter((n) => n > 0).length).toBeGreaterThanOrEqual(6);
    // 2 = the next prompt waited in ComfyUI's queue while one ran; never a third.
    expect(Math.max(...lengths)).toBe(2);
  } finally {
    watcher.close();
  }
});

test("a deadline cancels only the worker's own prompt, never another client's", async () => {
  sim.setNodeDelay({ ImageScale: 5_000 }); // well past the worker's 2 s deadline
  try {
    // Another client's prompt is running in ComfyUI; the worker's prompt queues behind it.
    const other = (await (
      await fetch(`${sim.url}/prompt`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: slowWorkflow('other_client'), client_id: 'someone-else' }),
      })
    ).json()) as { prompt_id: string };
    const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('mine') } });
    expect(res.status).toBe(504);
    const mine = sim.prompts[sim.prompts.length - 1]!.prompt_id;

    const history = async (id: string) => (await (await fetch(`${sim.url}/history/${id}`)).json()) as Record<string, any>;
    await until(
      async () => Object.keys(await history(other.prompt_id)).length > 0,
      10_000,
      "the other client's prompt to finish",
    );
    expect((await history(other.prompt_id))[other.prompt_id].status.status_str).toBe('success');
    expect(await history(mine)).toEqual({}); // dequeued before it ever ran
  } finally {
    sim.setNodeDelay(20);
  }
});
