// Several ComfyUI backends per worker (COMFYUI_API_BASE=a,b): one runner per backend, one FIFO
// queue, each prompt on exactly one backend, the job records which; a backend that dies takes no
// more jobs while the other finishes the rest.
import { startSimulator, type Simulator } from '../../simulator';
import { waitForStatus } from '../http-api/support';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { saveWorkflow } from '../support/workflows';
import type { JobRecord } from '../../worker/jobs/types';

let a: Simulator;
let b: Simulator;
let worker: TestWorker;

beforeEach(async () => {
  // About 200 ms of execution per job (SaveImage is the slow node).
  a = await startSimulator({ nodeDelayMs: { SaveImage: 200, '*': 1 } });
  b = await startSimulator({ nodeDelayMs: { SaveImage: 200, '*': 1 } });
  worker = await startTestWorker(`${a.url},${b.url}`, {
    WEBSOCKET_RECONNECT_ATTEMPTS: '2',
    WEBSOCKET_RECONNECT_DELAY_S: '0.1',
    HISTORY_POLL_INTERVAL_S: '0.5',
  });
  await until(() => worker.runner.all.every((r) => r.ready), 10_000, 'both backends connected');
});
afterEach(async () => {
  await worker?.stop();
  await a?.close();
  await b?.close();
});

const submit = async (n: number, prefix: string) =>
  Promise.all(
    Array.from(
      { length: n },
      async (_, i) => (await postJson(`${worker.url}/run`, { workflow: saveWorkflow(`${prefix}${i}`) })).body.job_id as string,
    ),
  );

test('jobs spread over both backends, each prompt on exactly one, and each job records its backend', async () => {
  const ids = await submit(20, 'spread');
  const finals = await Promise.all(ids.map((id) => waitForStatus(worker.url, id, undefined, 30_000)));
  expect(finals.map((f) => f.status)).toEqual(Array(20).fill('completed'));

  const promptIds = [...a.prompts, ...b.prompts].map((p) => p.prompt_id);
  expect(promptIds).toHaveLength(20);
  expect(new Set(promptIds).size).toBe(20);
  const ranOn: JobRecord[] = [];
  for (const id of ids) ranOn.push((await worker.store.get(id))!);
  for (const job of ranOn) {
    const sim = job.backend === a.url ? a : job.backend === b.url ? b : undefined;
    expect(sim?.prompts.some((p) => p.prompt_id === job.promptId)).toBe(true);
  }
  // Both GPUs worked: neither took fewer than a quarter of the jobs.
  expect(Math.min(a.prompts.length, b.prompts.length)).toBeGreaterThanOrEqual(5);
});

test('/health and /metrics show each backend', async () => {
  const health = (await callJson('GET', `${worker.url}/health`)).body;
  expect(health.status).toBe('healthy');
  expect(health.backends.map((h: { url: string; healthy: boolean }) => [h.url, h.healthy])).toEqual([
    [a.url, true],
    [b.url, true],
  ]);
  const metrics = await (await fetch(`${worker.url}/metrics`)).text();
  expect(metrics).toContain(`comfyui_worker_comfy_up{backend="${a.url}"} 1`);
  expect(metrics).toContain(`comfyui_worker_comfy_up{backend="${b.url}"} 1`);
});

test('a backend that dies mid-run: its jobs end clearly, the other backend finishes the rest, nothing hangs', async () => {
  const ids = await submit(12, 'survive');
  await until(() => b.prompts.length >= 1, 5_000, 'b has work');
  await b.crash();
  const finals = await Promise.all(ids.map((id) => waitForStatus(worker.url, id, undefined, 30_000)));
  const onB = new Set(b.prompts.map((p) => p.prompt_id));
  for (const [i, final] of finals.entries()) {
    const job = (await worker.store.get(ids[i]!))!;
    if (final.status === 'completed') {
      expect(job.backend).toBe(a.url);
    } else {
      // Handed to b when it died: failed with the reason, never run elsewhere behind its back.
      expect(final.status).toBe('failed');
      expect(final.error_code).toMatch(/^(comfy_connection|prompt_lost)$/);
      expect(onB.has(job.promptId!)).toBe(true);
    }
  }
  expect(finals.filter((f) => f.status === 'completed').length).toBeGreaterThanOrEqual(ids.length - 3);
  const health = (await callJson('GET', `${worker.url}/health`)).body;
  expect(health.status).toBe('healthy');
  expect(health.backends.find((h: { url: string }) => h.url === b.url).healthy).toBe(false);
});
