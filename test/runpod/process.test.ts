// The RunPod door in the built worker as a real child process (test/support/process.ts), against
// the simulator and the fake control plane in this process: SIGTERM during a job, and SIGKILL
// during a job with the result posted by the next process without ComfyUI running the prompt twice.
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { startFakeRunpod, type FakeRunpod } from '../support/fake-runpod';
import { spawnWorker } from '../support/process';
import { tempDir } from '../support/tmp';
import { callJson, until } from '../support/worker';
import { PNG_MAGIC, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let fake: FakeRunpod;
let dbPath: string;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: { ImageScale: 2_000, '*': 1 } });
  fake = await startFakeRunpod();
  dbPath = path.join(tempDir('runpod-proc-'), 'jobs.db');
});
afterEach(async () => {
  await fake.close();
  await sim.close();
});

const env = (extra: Record<string, string> = {}) =>
  fake.env({
    COMFYUI_API_BASE: sim.url,
    SQLITE_DB_PATH: dbPath,
    HISTORY_POLL_INTERVAL_S: '0.5',
    WEBSOCKET_RECONNECT_DELAY_S: '0.2',
    ...extra,
  });

const inbox = () => fs.readdirSync(path.join(path.dirname(dbPath), 'runpod-taken'));

async function lastHistoryMessage(promptId: string): Promise<string | undefined> {
  const history = (await callJson('GET', `${sim.url}/history/${promptId}`)).body as Record<string, any>;
  const messages: Array<[string]> = history[promptId]?.status?.messages ?? [];
  return messages[messages.length - 1]?.[0];
}

describe('SIGTERM during a job', () => {
  test('the job ends within the grace period: its result is posted, then the worker exits 0', async () => {
    const worker = await spawnWorker(env({ RUNPOD_STOP_GRACE_S: '15' }));
    fake.enqueue({ id: 'graceful', input: { workflow: slowWorkflow('g') } });
    await until(() => sim.prompts.length === 1, 10_000, 'the prompt to run');
    const signalled = Date.now();
    expect(await worker.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    const result = await fake.resultFor('graceful', 1);
    expect(result.body.output.images[0].filename).toMatch(/^g_/);
    expect(Buffer.from(result.body.output.images[0].data, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
    // No job was asked for after the signal.
    expect(fake.takes().filter((t) => t.at > signalled)).toEqual([]);
    expect(inbox()).toEqual([]);
  });

  test('the job outlasts the grace period: its prompt is interrupted, it is posted as failed with the reason, exit 0', async () => {
    sim.setNodeDelay({ ImageScale: 4_000, '*': 1 });
    const worker = await spawnWorker(env({ RUNPOD_STOP_GRACE_S: '0.5' }));
    fake.enqueue({ id: 'cut', input: { workflow: slowWorkflow('c') } });
    await until(() => sim.prompts.length === 1, 10_000, 'the prompt to run');
    expect(await worker.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    const result = await fake.resultFor('cut', 1);
    expect(result.body).toEqual({
      error:
        'Worker stopping (SIGTERM): the job did not finish within the 0.5 s grace period, so its prompt was interrupted; submit it again',
    });
    const promptId = sim.prompts[0]!.prompt_id;
    await until(async () => (await lastHistoryMessage(promptId)) !== undefined, 10_000, 'the prompt to end');
    expect(await lastHistoryMessage(promptId)).toBe('execution_interrupted');
    expect(inbox()).toEqual([]);
  });

  test('idle: the job-take long-poll is abandoned and the worker exits 0 at once', async () => {
    fake.holdMs = 60_000;
    const worker = await spawnWorker(env());
    await fake.waitFor('a job-take poll', () => fake.takes().length > 0 || fake.hits.some((h) => h.kind === 'ping'));
    expect(await worker.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(fake.results()).toEqual([]);
  });
});

describe('SIGKILL during a job: the next process posts its result, and ComfyUI ran the prompt once', () => {
  test.each([
    ['restarted while ComfyUI still runs the prompt', false],
    ['restarted after ComfyUI finished the prompt', true],
  ])('%s', async (_name, waitForComfy) => {
    // Still running means still running once a second process has started, on a loaded machine too.
    if (!waitForComfy) sim.setNodeDelay({ ImageScale: 8_000, '*': 1 });
    const first = await spawnWorker(env());
    fake.enqueue({ id: 'crash-1', input: { workflow: slowWorkflow('k') } });
    await until(() => sim.prompts.length === 1, 10_000, 'the prompt to run');
    expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(fake.results('crash-1')).toEqual([]);
    expect(inbox()).toEqual(['crash-1.json']);
    const promptId = sim.prompts[0]!.prompt_id;
    if (waitForComfy) await until(async () => (await lastHistoryMessage(promptId)) !== undefined, 10_000, 'ComfyUI to finish');
    else expect(await lastHistoryMessage(promptId)).toBeUndefined();

    const pingsBefore = fake.pings().length;
    const second = await spawnWorker(env());
    try {
      const result = await fake.resultFor('crash-1');
      const [image] = result.body.output.images;
      expect(image.filename).toMatch(/^k_[0-9a-f]{8}_00001_\.png$/);
      expect(Buffer.from(image.data, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
      // One prompt, submitted once; the job was handed out once and answered once.
      expect(sim.prompts.map((p) => p.prompt_id)).toEqual([promptId]);
      expect(fake.results('crash-1')).toHaveLength(1);
      expect(fake.takes().filter((t) => t.answered === 200)).toHaveLength(1);
      // The entry goes once the worker has read RunPod's answer.
      await until(() => inbox().length === 0, 5_000, 'the taken-jobs entry to go');
      if (!waitForComfy) {
        // While the second process waited for the prompt, its heartbeat carried the job.
        expect(
          fake
            .pings()
            .slice(pingsBefore)
            .some((p) => p.query.get('job_id') === 'crash-1'),
        ).toBe(true);
      }
    } finally {
      await second.kill('SIGTERM');
    }
  });

  test('a job RunPod hands out again after a crash is answered from the store, not run again', async () => {
    sim.setNodeDelay({ '*': 1 });
    const first = await spawnWorker(env());
    fake.enqueue({ id: 'twice', input: { workflow: slowWorkflow('t') } });
    await until(() => sim.prompts.length === 1, 10_000, 'the prompt to run');
    // The worker dies as the prompt ends, before it could post; RunPod hands the job out again.
    const promptId = sim.prompts[0]!.prompt_id;
    await until(async () => (await lastHistoryMessage(promptId)) !== undefined, 10_000, 'ComfyUI to finish');
    await first.kill('SIGKILL');
    const posted = fake.results('twice').length;
    fake.enqueue({ id: 'twice', input: { workflow: slowWorkflow('t') } });
    const second = await spawnWorker(env());
    try {
      await until(() => fake.results('twice').length > posted, 15_000, 'the second answer');
      await new Promise((r) => setTimeout(r, 500));
      expect(sim.prompts).toHaveLength(1);
      const answers = fake.results('twice');
      expect(answers[answers.length - 1]!.body.output.images[0].filename).toMatch(/^t_/);
    } finally {
      await second.kill('SIGTERM');
    }
  });
});
