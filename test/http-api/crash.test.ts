// Crashes with real processes: the built worker is SIGKILLed with one job running, the next
// prompts (one, or three as COMFY_QUEUE_AHEAD's default) waiting in ComfyUI's queue behind it and
// the rest of 50 pending, or ComfyUI (the simulator) dies
// mid-job, or both. Every accepted job must reach a terminal state, and no prompt may run twice
// because of a restart (a prompt ComfyUI lost before it ran is submitted again, once).
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { runWorkerToExit, spawnWorker, type WorkerProcess } from '../support/process';
import { tempDir } from '../support/tmp';
import { PNG_MAGIC, saveWorkflow } from '../support/workflows';
import { callJson, postJson, until } from '../support/worker';
import { slowWorkflow, submittedPrefixes, waitForStatus } from './support';

const PENDING = 50;
let sim: Simulator;
let dbPath: string;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: { ImageScale: 1_500, '*': 1 } });
  dbPath = path.join(tempDir('crash-'), 'jobs.db');
});
afterEach(() => sim?.close());

const workerEnv = (ahead = 1) => ({
  COMFYUI_API_BASE: sim.url,
  SQLITE_DB_PATH: dbPath,
  HISTORY_POLL_INTERVAL_S: '0.5',
  WEBSOCKET_RECONNECT_ATTEMPTS: '5',
  WEBSOCKET_RECONNECT_DELAY_S: '0.2',
  COMFY_READY_TIMEOUT_S: '30',
  // The scenario: exactly `ahead` prompts wait in ComfyUI's queue behind the running one.
  COMFY_QUEUE_AHEAD: String(ahead),
});

/** How many accepted prompts each job (known by its filename_prefix) has had. */
function promptsPerJob(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const prefix of submittedPrefixes(sim.prompts)) {
    const job = prefix.replace(/_[0-9a-f]{8}$/, '');
    counts.set(job, (counts.get(job) ?? 0) + 1);
  }
  return counts;
}

/**
 * One slow job running in ComfyUI and `pending` quick ones behind it: the first `ahead` of them
 * handed to ComfyUI already (their prompts wait in ComfyUI's queue), the others pending in the worker's.
 */
async function loadWorker(worker: WorkerProcess, pending: number, ahead = 1): Promise<{ running: string; waiting: string[] }> {
  const running = (await postJson(`${worker.url}/run`, { workflow: slowWorkflow('slow') })).body.job_id as string;
  await waitForStatus(worker.url, running, ['running']);
  await until(() => promptsPerJob().get('slow') === 1, 5_000, 'slow prompt in ComfyUI');
  const waiting: string[] = [];
  for (let i = 0; i < pending; i++) {
    waiting.push((await postJson(`${worker.url}/run`, { workflow: saveWorkflow(`quick${i}`) })).body.job_id);
  }
  await until(() => promptsPerJob().get(`quick${ahead - 1}`) === 1, 5_000, 'the next prompts queued in ComfyUI');
  const stats = (await callJson('GET', `${worker.url}/stats`)).body;
  expect([stats.running_jobs, stats.pending_jobs]).toEqual([1 + ahead, pending - ahead]);
  const queue = (await callJson('GET', `${sim.url}/queue`)).body;
  expect([queue.queue_running.length, queue.queue_pending.length]).toEqual([1, ahead]);
  return { running, waiting };
}

/** Waits until nothing is pending or running, then returns every job's /status. */
async function allFinished(url: string, ids: string[], timeoutMs = 30_000): Promise<any[]> {
  await until(
    async () => {
      const stats = (await callJson('GET', `${url}/stats`)).body;
      return stats.pending_jobs === 0 && stats.running_jobs === 0;
    },
    timeoutMs,
    'every job to end',
  );
  return Promise.all(ids.map(async (id) => (await callJson('GET', `${url}/status/${id}`)).body));
}

// COMFY_QUEUE_AHEAD 1, and 3 (the HTTP door's default with one ComfyUI).
describe.each([1, 3])(
  'the worker is SIGKILLed with one job running, %i queued in ComfyUI and the rest of 50 pending',
  (ahead) => {
    test.each([
      ['restarted while ComfyUI still runs the prompt: it is watched again', false],
      ['restarted after ComfyUI finished the prompt: its outputs are read from /history', true],
    ])('%s', async (_name, waitForComfy) => {
      const first = await spawnWorker(workerEnv(ahead));
      const { running, waiting } = await loadWorker(first, PENDING, ahead);
      expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

      const slowPrompt = sim.prompts.find((p) => JSON.stringify(p.body).includes('"slow_'))!.prompt_id;
      const history = async () => (await callJson('GET', `${sim.url}/history/${slowPrompt}`)).body[slowPrompt];
      if (waitForComfy) await until(async () => (await history()) !== undefined, 5_000, 'ComfyUI to finish');
      else expect(await history()).toBeUndefined();

      const second = await spawnWorker(workerEnv(ahead));
      try {
        const finals = await allFinished(second.url, [running, ...waiting]);
        expect(finals.map((f) => f.status)).toEqual(Array(PENDING + 1).fill('completed'));
        const recovered = finals[0];
        expect(recovered.result.images[0].filename).toMatch(/^slow_[0-9a-f]{8}_00001_\.png$/);
        expect(Buffer.from(recovered.result.images[0].data, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
        // Each job reached ComfyUI exactly once, and no prompt id was used twice.
        expect(sim.prompts).toHaveLength(PENDING + 1);
        expect(new Set(sim.prompts.map((p) => p.prompt_id)).size).toBe(PENDING + 1);
        expect([...promptsPerJob().values()].every((n) => n === 1)).toBe(true);
        expect(promptsPerJob().size).toBe(PENDING + 1);
        // ... in submission order.
        expect(submittedPrefixes(sim.prompts).map((p) => p.replace(/_[0-9a-f]{8}$/, ''))).toEqual([
          'slow',
          ...waiting.map((_, i) => `quick${i}`),
        ]);
      } finally {
        await second.kill('SIGTERM');
      }
    });
  },
);

test('ComfyUI dies and restarts mid-job: the running job fails clearly, the 50 others complete, only the one ComfyUI lost before it ran is sent again', async () => {
  const worker = await spawnWorker(workerEnv());
  try {
    const { running, waiting } = await loadWorker(worker, PENDING);
    await sim.crash();
    await new Promise((r) => setTimeout(r, 500));
    await sim.restart();

    const finals = await allFinished(worker.url, [running, ...waiting]);
    expect(finals[0]).toMatchObject({ status: 'failed', error_code: expect.stringMatching(/^(prompt_lost|comfy_connection)$/) });
    expect(finals[0].error).toMatch(/ComfyUI/);
    expect(finals.slice(1).map((f) => f.status)).toEqual(Array(PENDING).fill('completed'));
    expect(new Set(sim.prompts.map((p) => p.prompt_id)).size).toBe(sim.prompts.length);
    expect(promptsPerJob().size).toBe(PENDING + 1);
    // quick0 waited in ComfyUI's queue and was lost with it, never run: sent again once.
    expect(promptsPerJob().get('quick0')).toBe(2);
    expect([...promptsPerJob().entries()].filter(([job]) => job !== 'quick0').every(([, n]) => n === 1)).toBe(true);
  } finally {
    await worker.kill('SIGTERM');
  }
});

test('both die: the jobs ComfyUI forgot run again once with a new prompt id; the others run once', async () => {
  const first = await spawnWorker(workerEnv());
  const { running, waiting } = await loadWorker(first, 5);
  await first.kill('SIGKILL');
  await sim.crash();
  await sim.restart();

  const second = await spawnWorker(workerEnv());
  try {
    const finals = await allFinished(second.url, [running, ...waiting]);
    expect(finals.map((f) => f.status)).toEqual(Array(6).fill('completed'));
    // Both prompts ComfyUI held (slow running, quick0 queued) were forgotten: each runs again once.
    expect(promptsPerJob().get('slow')).toBe(2);
    expect(promptsPerJob().get('quick0')).toBe(2);
    expect([...promptsPerJob().entries()].filter(([job]) => job !== 'slow' && job !== 'quick0').every(([, n]) => n === 1)).toBe(
      true,
    );
    expect(new Set(sim.prompts.map((p) => p.prompt_id)).size).toBe(sim.prompts.length);
  } finally {
    await second.kill('SIGTERM');
  }
});

test('SIGTERM stops cleanly (exit 0) and the next process finishes what was left', async () => {
  const first = await spawnWorker(workerEnv());
  const { running, waiting } = await loadWorker(first, 3);
  expect(await first.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  const second = await spawnWorker(workerEnv());
  try {
    const finals = await allFinished(second.url, [running, ...waiting]);
    expect(finals.map((f) => f.status)).toEqual(Array(4).fill('completed'));
    expect([...promptsPerJob().values()].every((n) => n === 1)).toBe(true);
  } finally {
    await second.kill('SIGTERM');
  }
});

describe('a database the worker cannot use stops it at startup with a clear message (exit 2)', () => {
  test('a file that is not a SQLite database', async () => {
    fs.writeFileSync(dbPath, 'this is not a database, just some text that is long enough to have a header\n'.repeat(20));
    const exit = await runWorkerToExit(workerEnv());
    expect(exit.code).toBe(2);
    expect(exit.output).toContain(`SQLITE_DB_PATH: ${dbPath} is not a SQLite database`);
  });

  test('a folder where the file should be', async () => {
    fs.mkdirSync(dbPath);
    const exit = await runWorkerToExit(workerEnv());
    expect(exit.code).toBe(2);
    expect(exit.output).toContain(`SQLITE_DB_PATH: ${dbPath} cannot be opened for writing`);
  });

  test('a place that is not writable', async () => {
    // /proc refuses new files to everyone, root included (a chmod would not stop root).
    const unwritable = '/proc/comfyui_jobs.db';
    const exit = await runWorkerToExit({ ...workerEnv(), SQLITE_DB_PATH: unwritable, JOB_SECRETS_KEY: 'k' });
    expect(exit.code).toBe(2);
    expect(exit.output).toContain(`SQLITE_DB_PATH: ${unwritable} cannot be opened for writing`);
  });

  test('a folder that cannot be created', async () => {
    fs.writeFileSync(dbPath, '');
    const inside = path.join(dbPath, 'jobs.db');
    const exit = await runWorkerToExit({ ...workerEnv(), SQLITE_DB_PATH: inside, JOB_SECRETS_KEY: 'k' });
    expect(exit.code).toBe(2);
    expect(exit.output).toContain(`SQLITE_DB_PATH: cannot create the folder of ${inside}`);
  });

  test('a bad upkeep setting names the variable', async () => {
    const exit = await runWorkerToExit({ ...workerEnv(), CLEANUP_INTERVAL_S: 'hourly' });
    expect(exit.code).toBe(2);
    expect(exit.output).toContain('CLEANUP_INTERVAL_S: expected a number');
  });
});
