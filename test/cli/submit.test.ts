// The command-line client end to end: cli/bin.js as a child process, the built worker as another,
// the ComfyUI simulator behind it. Output is piped, so progress comes as plain lines.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { waitForStatus } from '../http-api/support';
import { paddedPng } from '../support/images';
import { spawnWorker, type WorkerProcess } from '../support/process';
import { tempDir } from '../support/tmp';
import { PNG_MAGIC } from '../support/workflows';
import { callJson, postJson, until } from '../support/worker';
import { BIN, EXAMPLE_WORKFLOW, closedPort, jobIdOf, runCli, startCli } from './support';

let sim: Simulator;
let worker: WorkerProcess;

beforeAll(async () => {
  // 20 KSampler steps of 60 ms: long enough to see steps in the progress lines.
  sim = await startSimulator({ nodeDelayMs: 5, stepDelayMs: 60 });
  worker = await spawnWorker({
    COMFYUI_API_BASE: sim.url,
    SQLITE_DB_PATH: path.join(tempDir('cli-db-'), 'jobs.db'),
    HISTORY_POLL_INTERVAL_S: '0.5',
    // A job submitted behind another waits in the worker's queue (not ComfyUI's) and shows its place.
    COMFY_QUEUE_AHEAD: '1',
  });
});
afterAll(async () => {
  await worker?.kill('SIGTERM');
  await sim?.close();
});

const url = () => ['--url', worker.url];

/** The file names a job's /status lists, read from the worker directly. */
async function namesInStatus(id: string): Promise<string[]> {
  const body = (await callJson('GET', `${worker.url}/status/${id}`)).body;
  return (body.result.output as Array<{ filename?: string }>).flatMap((o) => (o.filename ? [o.filename] : [])).sort();
}

test('a workflow file: progress lines, the outputs in --out under their real names, exit 0', async () => {
  const out = tempDir('cli-out-');
  const run = await runCli(['submit', EXAMPLE_WORKFLOW, '--out', out, ...url()]);
  expect(run.stderr).not.toMatch(/error/i);
  expect(run.code).toBe(0);
  const id = jobIdOf(run.stderr);
  const names = await namesInStatus(id);
  expect(names).toHaveLength(1);
  expect(names[0]).toMatch(/^example_[0-9a-f]{8}_00001_\.png$/);
  expect(fs.readdirSync(out).sort()).toEqual(names);
  expect(fs.readFileSync(path.join(out, names[0]!)).subarray(0, 8)).toEqual(PNG_MAGIC);
  // stdout: the files written, one a line (for scripts).
  expect(run.stdout.trim().split('\n')).toEqual([path.join(out, names[0]!)]);
  // Not a terminal: plain lines, with the node (named from the workflow) and the sampler's steps.
  expect(run.stderr).toMatch(
    new RegExp(`^job ${id}: running \\d+%, node 3 \\(KSampler\\), \\d/7 nodes done, step \\d+/20$`, 'm'),
  );
  expect(run.stderr).toMatch(new RegExp(`^job ${id}: completed in [0-9.]+ s, 1 file\\(s\\) in ${out}$`, 'm'));
  expect(run.stderr).not.toContain('\u001b['); // no terminal control sequences
});

test('a job waiting behind others shows its queue position, then runs', async () => {
  // Two jobs ahead: one executing, one handed to ComfyUI; the CLI's job waits in the worker's queue.
  const workflow = JSON.parse(fs.readFileSync(EXAMPLE_WORKFLOW, 'utf8'));
  const ahead: string[] = [];
  for (const seed of [1, 2]) {
    workflow['3'].inputs.seed = seed;
    ahead.push((await postJson(`${worker.url}/run`, { workflow })).body.job_id);
  }
  const run = await runCli(['submit', EXAMPLE_WORKFLOW, '--out', tempDir('cli-out-'), ...url()]);
  expect(run.code).toBe(0);
  const id = jobIdOf(run.stderr);
  expect(run.stderr).toMatch(new RegExp(`^job ${id}: queued, (next in the queue|position \\d+ in the queue)$`, 'm'));
  const lines = run.stderr.split('\n');
  const queued = lines.findIndex((l) => l.includes(': queued'));
  const running = lines.findIndex((l) => l.includes(': running'));
  expect(queued).toBeLessThan(running);
  for (const a of ahead) await waitForStatus(worker.url, a, ['completed']);
});

test('a modifier with an input image file: --set values, the image uploaded, the output written', async () => {
  const dir = tempDir('cli-in-');
  const image = path.join(dir, 'photo.png');
  fs.writeFileSync(image, await paddedPng(100));
  const out = tempDir('cli-out-');
  const run = await runCli([
    'submit',
    '--modifier',
    'Image2Image',
    '--image',
    `source.png=${image}`,
    '--set',
    'input_image=source.png',
    '--set',
    'prompt=a watercolour lighthouse',
    '--set',
    'steps=4',
    '--set',
    'denoise=0.5',
    '--out',
    out,
    ...url(),
  ]);
  expect(run.stderr).not.toMatch(/error/i);
  expect(run.code).toBe(0);
  const id = jobIdOf(run.stderr);
  const names = await namesInStatus(id);
  expect(names.length).toBeGreaterThan(0);
  expect(fs.readdirSync(out).sort()).toEqual(names);
  // The image reached ComfyUI under the name given, and the sampler ran the steps set.
  const prompt = (sim.prompts.at(-1)!.body as { prompt: unknown }).prompt as Record<
    string,
    { class_type: string; inputs: Record<string, unknown> }
  >;
  const load = Object.values(prompt).find((n) => n.class_type === 'LoadImage')!;
  expect(load.inputs.image).toBe('source.png');
  expect(fs.existsSync(path.join(sim.dataDir, 'input', 'source.png'))).toBe(true);
  const sampler = Object.values(prompt).find((n) => n.class_type === 'KSampler')!;
  expect(sampler.inputs.steps).toBe(4);
  expect(sampler.inputs.denoise).toBe(0.5);
});

test("a failing workflow: exit 3 and ComfyUI's message as the worker gave it", async () => {
  const dir = tempDir('cli-in-');
  const workflow = JSON.parse(fs.readFileSync(EXAMPLE_WORKFLOW, 'utf8'));
  workflow['4'].inputs.ckpt_name = 'not-installed.safetensors';
  fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify(workflow));
  const out = tempDir('cli-out-');
  const run = await runCli(['submit', path.join(dir, 'bad.json'), '--out', out, ...url()]);
  expect(run.code).toBe(3);
  const id = jobIdOf(run.stderr);
  const status = (await callJson('GET', `${worker.url}/status/${id}`)).body;
  expect(status.status).toBe('failed');
  // The worker's message, verbatim, with its code; ComfyUI's node errors below it.
  expect(run.stderr).toContain(`job ${id}: failed (${status.error_code}): ${status.error}`);
  expect(run.stderr).toContain('not-installed.safetensors');
  expect(run.stderr).toMatch(/Value not in list/);
  expect(fs.readdirSync(out)).toEqual([]);
});

test("a request the worker refuses: exit 2 with the worker's message", async () => {
  const run = await runCli(['submit', '--modifier', 'NoSuchModifier', ...url()]);
  expect(run.code).toBe(2);
  expect(run.stderr).toMatch(/^error: the worker answered 400: .*NoSuchModifier/m);
  expect(run.stderr).toMatch(/Text2Image/); // the worker lists the known ones
});

test('invalid input on the command line: exit 2 before anything is sent', async () => {
  const dir = tempDir('cli-in-');
  fs.writeFileSync(path.join(dir, 'broken.json'), '{"3": ');
  const cases: Array<[string[], RegExp]> = [
    [['submit'], /give a workflow file/],
    [['submit', path.join(dir, 'missing.json')], /cannot read the workflow .*ENOENT/],
    [['submit', path.join(dir, 'broken.json')], /is not JSON/],
    [['submit', EXAMPLE_WORKFLOW, '--modifier', 'Text2Image'], /not both/],
    [['submit', EXAMPLE_WORKFLOW, '--set', 'steps=3'], /--set needs --modifier/],
    [['submit', EXAMPLE_WORKFLOW, '--image', `x.png=${path.join(dir, 'nope.png')}`], /cannot read .*nope\.png/],
    [['submit', EXAMPLE_WORKFLOW, '--timeout', '-1'], /--timeout/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ];
  for (const [args, message] of cases) {
    const run = await runCli([...args, ...url()]);
    expect({ args, code: run.code }).toEqual({ args, code: 2 });
    expect(run.stderr).toMatch(message);
  }
});

test('--help lists the commands and the exit codes', async () => {
  const help = await runCli(['--help']);
  expect(help.code).toBe(0);
  for (const command of ['submit', 'status', 'cancel', 'serve']) expect(help.stdout).toContain(command);
  expect(help.stdout).toMatch(
    /Exit codes: 0 done, 1 .*2 invalid input.*3 job failed.*\n4 worker unreachable, 5 --timeout.*130 interrupted/,
  );
});

test('an unreachable worker: exit 4', async () => {
  const port = await closedPort();
  const run = await runCli(['submit', EXAMPLE_WORKFLOW, '--url', `http://127.0.0.1:${port}`]);
  expect(run.code).toBe(4);
  expect(run.stderr).toMatch(new RegExp(`cannot reach the worker at http://127.0.0.1:${port}: ECONNREFUSED`));
  // COMFYUI_WORKER_URL is read when --url is not given.
  const viaEnv = await runCli(['status', 'x'], { COMFYUI_WORKER_URL: `http://127.0.0.1:${port}` });
  expect(viaEnv.code).toBe(4);
});

test('--timeout: exit 5 and the job cancelled', async () => {
  const slow = await startSimulatorSlowJob();
  const run = await runCli(['submit', slow.file, '--timeout', '0.5', '--out', tempDir('cli-out-'), ...url()]);
  expect(run.code).toBe(5);
  const id = jobIdOf(run.stderr);
  expect(run.stderr).toMatch(/--timeout 0.5 s passed/);
  expect((await waitForStatus(worker.url, id)).status).toBe('cancelled');
});

test('Ctrl-C: exit 130 and the job cancelled', async () => {
  const slow = await startSimulatorSlowJob();
  const cli = startCli(['submit', slow.file, '--out', tempDir('cli-out-'), ...url()]);
  await until(() => /: running/.test(cli.stderr()), 10_000, 'the job running');
  cli.child.kill('SIGINT');
  const run = await cli.done;
  expect(run.code).toBe(130);
  const id = jobIdOf(run.stderr);
  expect(run.stderr).toMatch(/interrupted; Successfully cancelled/);
  expect((await waitForStatus(worker.url, id)).status).toBe('cancelled');
});

test('status and cancel', async () => {
  const done = await runCli(['submit', EXAMPLE_WORKFLOW, '--out', tempDir('cli-out-'), ...url()]);
  const id = jobIdOf(done.stderr);
  const status = await runCli(['status', id, ...url()]);
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(new RegExp(`^job ${id}: completed; outputs: example_[0-9a-f]{8}_00001_\\.png$`, 'm'));
  // --out writes a finished job's files; --json prints the worker's answer.
  const out = tempDir('cli-out-');
  expect((await runCli(['status', id, '--out', out, ...url()])).code).toBe(0);
  expect(fs.readdirSync(out)).toEqual(await namesInStatus(id));
  const json = await runCli(['status', id, '--json', ...url()]);
  expect(JSON.parse(json.stdout).job_id).toBe(id);

  const slow = await startSimulatorSlowJob();
  const waiting = startCli(['submit', slow.file, '--out', tempDir('cli-out-'), ...url()]);
  await until(() => /: running/.test(waiting.stderr()), 10_000, 'the job running');
  const slowId = jobIdOf(waiting.stderr());
  const running = await runCli(['status', slowId, ...url()]);
  expect(running.stdout).toMatch(new RegExp(`^job ${slowId}: running \\d+%`, 'm'));
  const cancel = await runCli(['cancel', slowId, ...url()]);
  expect(cancel.code).toBe(0);
  expect(cancel.stdout).toMatch(/^Successfully cancelled request/m);
  // The CLI that was following it reports the cancellation as the worker gave it: exit 3.
  const followed = await waiting.done;
  expect(followed.code).toBe(3);
  expect(followed.stderr).toContain(`job ${slowId}: cancelled (cancelled): Request cancelled by client`);
  expect((await runCli(['status', slowId, ...url()])).code).toBe(3);

  const unknown = await runCli(['status', 'no-such-job', ...url()]);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toMatch(/the worker answered 404/);
  expect((await runCli(['cancel', 'no-such-job', ...url()])).code).toBe(2);
});

/** A workflow file whose sampler takes 200 steps (12 s on this simulator). */
async function startSimulatorSlowJob(): Promise<{ file: string }> {
  const workflow = JSON.parse(fs.readFileSync(EXAMPLE_WORKFLOW, 'utf8'));
  workflow['3'].inputs.steps = 200;
  workflow['3'].inputs.seed = Math.floor(Math.random() * 1e9);
  const file = path.join(tempDir('cli-in-'), 'slow.json');
  fs.writeFileSync(file, JSON.stringify(workflow));
  return { file };
}

test('on a terminal: a progress bar instead of lines', async () => {
  const out = tempDir('cli-out-');
  // `script` gives the CLI a pseudo-terminal and copies what it draws to its own stdout.
  const command = [process.execPath, BIN, 'submit', EXAMPLE_WORKFLOW, '--out', out, ...url()].join(' ');
  const child = spawn('script', ['-qefc', command, '/dev/null'], {
    env: { PATH: process.env.PATH ?? '', TERM: 'xterm' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let screen = '';
  child.stdout.on('data', (c: Buffer) => (screen += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(code).toBe(0);
  expect(screen).toMatch(/running +\|[\u2588\u2591]{30}\| \d+% node 3 \(KSampler\)/);
  expect(screen).toMatch(/completed\s*\|\u2588{30}\| 100%/);
  expect(screen).not.toMatch(/: running \d+%/); // no plain lines
  expect(fs.readdirSync(out)).toHaveLength(1);
});

test('--api-key (or COMFYUI_WORKER_API_KEY) for a worker with API_KEY; a wrong key is exit 2', async () => {
  const guarded = await spawnWorker({
    COMFYUI_API_BASE: sim.url,
    SQLITE_DB_PATH: path.join(tempDir('cli-db-'), 'jobs.db'),
    API_KEY: 'sesame-0123456789',
  });
  try {
    const wrong = await runCli(['submit', EXAMPLE_WORKFLOW, '--url', guarded.url, '--api-key', 'nope']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/the worker answered 401: /);
    const out = tempDir('cli-out-');
    const viaEnv = await runCli(['submit', EXAMPLE_WORKFLOW, '--url', guarded.url, '--out', out], {
      COMFYUI_WORKER_API_KEY: 'sesame-0123456789',
    });
    expect(viaEnv.code).toBe(0);
    expect(fs.readdirSync(out)).toHaveLength(1);
    // The key is never printed.
    expect(viaEnv.stderr + viaEnv.stdout).not.toContain('sesame');
  } finally {
    await guarded.kill('SIGTERM');
  }
});
