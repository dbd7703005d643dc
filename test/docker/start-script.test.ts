// docker/start.sh with the simulator standing in for ComfyUI (COMFYUI_CMD): ComfyUI gets the
// flags and COMFY_LOG_LEVEL, is restarted after a kill mid-job (that job fails clearly, the next
// one succeeds), a SIGTERM stops the worker and ComfyUI and the script exits 0.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { waitForStatus } from '../http-api/support';
import { closedPort } from '../cli/support';
import { tempDir } from '../support/tmp';
import { callJson, postJson, until } from '../support/worker';

const ROOT = path.resolve(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'docker', 'start.sh');
const SIMULATOR = path.join(ROOT, 'dist', 'simulator', 'cli.js');
const HEALTHCHECK = path.join(ROOT, 'docker', 'healthcheck.js');
const WORKFLOW = JSON.parse(fs.readFileSync(path.join(ROOT, 'misc', 'example_workflow_api.json'), 'utf8'));

interface Script {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
afterAll(() => {
  for (const child of live) child.kill('SIGKILL');
});

function startScript(env: Record<string, string>, detached = false): Script {
  const child = spawn('sh', [SCRIPT], {
    detached,
    env: {
      PATH: process.env.PATH ?? '',
      COMFYUI_DIR: tempDir('comfyui-dir-'),
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      SQLITE_DB_PATH: path.join(tempDir('start-db-'), 'jobs.db'),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  return { child, output: () => text, exited };
}

/** The pids start.sh logged for ComfyUI ("ComfyUI started (pid N)"), in order. */
const comfyPids = (output: string) => [...output.matchAll(/ComfyUI started \(pid (\d+)\)/g)].map((m) => Number(m[1]));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('ComfyUI killed mid-job: restarted, the running job failed clearly, the next job succeeds; SIGTERM stops both', async () => {
  const port = await closedPort();
  const script = startScript({
    // 20 sampler steps of 100 ms: time to kill ComfyUI while the job runs.
    COMFYUI_CMD: `${process.execPath} ${SIMULATOR} --node-delay-ms 5 --step-delay-ms 100`,
    COMFYUI_PORT: String(port),
    COMFY_LOG_LEVEL: 'info',
    COMFYUI_RESTART_DELAY_S: '0',
    WEBSOCKET_RECONNECT_DELAY_S: '0.2',
    HISTORY_POLL_INTERVAL_S: '0.5',
  });
  await until(() => script.output().includes('"ComfyUI is ready"'), 20_000, 'the worker ready');
  const out = script.output();
  // ComfyUI's command line: loopback, the port, worker-comfyui's flags, the log level upper-cased.
  expect(out).toContain(`--listen 127.0.0.1 --port ${port} --disable-auto-launch --disable-metadata --verbose INFO --log-stdout`);
  expect(out).toContain(`ComfyUI simulator listening on http://127.0.0.1:${port}`);
  expect(out).toContain('log level: INFO');
  const url = (JSON.parse(out.split('\n').find((l) => l.includes('"worker started"'))!) as { url: string }).url;
  expect(JSON.parse(out.split('\n').find((l) => l.includes('"worker started"'))!)).toMatchObject({
    comfyui: `http://127.0.0.1:${port}`,
    exposedGc: true, // the default WORKER_CMD passes --expose-gc (worker/util/transfer-gc.ts)
  });
  const [firstComfy] = comfyPids(out);
  const workerPid = Number(/worker started \(pid (\d+)\)/.exec(out)![1]);

  const doomed = (await postJson(`${url}/run`, { workflow: WORKFLOW })).body.job_id as string;
  await until(
    async () => (await callJson('GET', `${url}/status/${doomed}`)).body.progress?.current_node === '3',
    10_000,
    'the job in its sampler',
  );
  process.kill(firstComfy!, 'SIGKILL');

  const failed = await waitForStatus(url, doomed, ['failed', 'completed', 'cancelled'], 15_000);
  expect(failed.status).toBe('failed');
  expect(['prompt_lost', 'comfy_connection']).toContain(failed.error_code);
  expect(failed.error).toMatch(/ComfyUI/);
  await until(() => comfyPids(script.output()).length === 2, 10_000, 'ComfyUI restarted');
  expect(script.output()).toMatch(/ComfyUI exited \(status 137\) after \d+s; restarting it in 0s/);
  const secondComfy = comfyPids(script.output())[1]!;
  expect(alive(firstComfy!)).toBe(false);

  const next = (await postJson(`${url}/run`, { workflow: WORKFLOW })).body.job_id as string;
  const done = await waitForStatus(url, next, ['failed', 'completed', 'cancelled'], 20_000);
  expect(done.error).toBeNull();
  expect(done.status).toBe('completed');
  expect(done.result.images[0].filename).toMatch(/^example_[0-9a-f]{8}_00001_\.png$/);

  // The image's HEALTHCHECK: the worker's /health on API_PORT.
  const healthcheck = (env: Record<string, string>) =>
    spawnSync(process.execPath, [HEALTHCHECK], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  expect(healthcheck({ API_PORT: new URL(url).port }).status).toBe(0);
  expect(healthcheck({ HEALTHCHECK_URL: `${url}/health` }).status).toBe(0);
  expect(healthcheck({ API_PORT: String(await closedPort()) }).status).toBe(1);

  script.child.kill('SIGTERM');
  expect(await script.exited).toBe(0);
  expect(script.output()).toContain('SIGTERM: stopping the worker, then ComfyUI');
  expect(script.output()).toContain('"signal":"SIGTERM","msg":"stopping"');
  expect(alive(workerPid)).toBe(false);
  expect(alive(secondComfy)).toBe(false);
});

test('Ctrl-C on a terminal (SIGINT to the whole process group): the worker stops once, cleanly, then ComfyUI', async () => {
  const port = await closedPort();
  // A process group of its own, as a terminal's foreground job.
  const script = startScript({ COMFYUI_CMD: `${process.execPath} ${SIMULATOR}`, COMFYUI_PORT: String(port) }, true);
  await until(() => script.output().includes('"ComfyUI is ready"'), 20_000, 'the worker ready');
  const comfy = comfyPids(script.output())[0]!;
  process.kill(-script.child.pid!, 'SIGINT');
  expect(await script.exited).toBe(0);
  expect(script.output()).toContain('SIGINT: stopping the worker, then ComfyUI');
  // One stop, by the TERM the script forwarded; the terminal's SIGINT did not reach the worker.
  expect(script.output().match(/"msg":"stopping"/g)).toHaveLength(1);
  expect(script.output()).toContain('"signal":"SIGTERM","msg":"stopping"');
  expect(alive(comfy)).toBe(false);
});

test('the worker exiting stops ComfyUI, and the script exits with its status', async () => {
  const port = await closedPort();
  // A bad setting: the worker stops at once with status 2.
  const script = startScript({
    COMFYUI_CMD: `${process.execPath} ${SIMULATOR}`,
    COMFYUI_PORT: String(port),
    MAX_QUEUE_SIZE: 'lots',
  });
  expect(await script.exited).toBe(2);
  expect(script.output()).toContain('MAX_QUEUE_SIZE');
  expect(script.output()).toMatch(/the worker exited \(status 2\): stopping ComfyUI/);
  for (const pid of comfyPids(script.output())) expect(alive(pid)).toBe(false);
});

test('a COMFY_LOG_LEVEL ComfyUI would refuse stops the script before anything starts', async () => {
  const script = startScript({ COMFYUI_CMD: `${process.execPath} ${SIMULATOR}`, COMFY_LOG_LEVEL: 'chatty' });
  expect(await script.exited).toBe(2);
  expect(script.output()).toContain("COMFY_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'CHATTY'");
  expect(comfyPids(script.output())).toEqual([]);
});
