// A worker with two ComfyUI backends is SIGKILLed while each runs a job: the next process
// reconciles each job with the backend that has its prompt (the job's recorded backend), and no
// prompt runs twice.
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { spawnWorker } from '../support/process';
import { tempDir } from '../support/tmp';
import { callJson, postJson, until } from '../support/worker';
import { slowWorkflow, waitForStatus } from './support';

let a: Simulator;
let b: Simulator;

beforeEach(async () => {
  a = await startSimulator({ nodeDelayMs: { ImageScale: 1_500, '*': 1 } });
  b = await startSimulator({ nodeDelayMs: { ImageScale: 1_500, '*': 1 } });
});
afterEach(async () => {
  await a?.close();
  await b?.close();
});

test('each job left running is recovered through its own backend, each prompt run once', async () => {
  const env = {
    COMFYUI_API_BASE: `${a.url},${b.url}`,
    SQLITE_DB_PATH: path.join(tempDir('crash-backends-'), 'jobs.db'),
    HISTORY_POLL_INTERVAL_S: '0.5',
  };
  const first = await spawnWorker(env);
  await until(
    async () => (await callJson('GET', `${first.url}/health`)).body.backends?.every((h: { healthy: boolean }) => h.healthy),
    10_000,
    'both backends',
  );
  const one = (await postJson(`${first.url}/run`, { workflow: slowWorkflow('on_one') })).body.job_id as string;
  const two = (await postJson(`${first.url}/run`, { workflow: slowWorkflow('on_two') })).body.job_id as string;
  await until(() => a.prompts.length === 1 && b.prompts.length === 1, 5_000, 'one prompt on each backend');
  await first.kill('SIGKILL');

  const second = await spawnWorker(env);
  try {
    const finals = await Promise.all([one, two].map((id) => waitForStatus(second.url, id, undefined, 20_000)));
    expect(finals.map((f) => f.status)).toEqual(['completed', 'completed']);
    // Nothing was submitted again: each backend still has its one prompt, and it finished there.
    expect([a.prompts.length, b.prompts.length]).toEqual([1, 1]);
    for (const sim of [a, b]) {
      const id = sim.prompts[0]!.prompt_id;
      expect(Object.keys((await callJson('GET', `${sim.url}/history/${id}`)).body)).toEqual([id]);
    }
  } finally {
    await second.kill('SIGTERM');
  }
});
