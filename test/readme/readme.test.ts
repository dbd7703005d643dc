// The README works as written: every shell command in its ```bash blocks is either run here or
// listed below with the reason it cannot be. Workers are started with the README's own
// `npm run simulate` commands (on free ports, with the build `npm test` already made), and every
// curl example runs against the door its section is about, with only the host and port rewritten;
// each must answer a non-error status (curl --fail-with-body).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir } from '../support/tmp';

jest.setTimeout(180_000);

const ROOT = path.join(__dirname, '..', '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const EXAMPLE_JOB_ID = '550e8400-e29b-41d4-a716-446655440000';
const API_KEY = 'readme-api-key-0123';
const ADMIN_API_KEY = 'readme-admin-key-4567';

/** Commands that do not run here, by how they start, and why. */
const NOT_RUN: Array<[prefix: string, why: string]> = [
  ['npm ci', 'installs: the test runs inside an installed clone'],
  ['npm test', 'this test is part of it'],
  ['npm start', 'needs a real ComfyUI'],
  ['COMFYUI_API_BASE=http://127.0.0.1:8188,http://127.0.0.1:8189 npm start', 'needs two real ComfyUIs'],
  ['docker ', 'needs Docker (not on the test machine)'],
  ['export ', "Vast's variables on a real instance"],
  ['curl -s https://$PUBLIC_IPADDR', "needs Vast's TLS certificate and a signature from its autoscaler"],
  ['COMFYUI_OUTPUT_DIR=', "needs a real ComfyUI and its folders (test/delivery/output-dir.test.ts reads the simulator's)"],
  ['(printf ', 'holds a connection for the body timeout; test/core/slow-clients.test.ts does it on a real socket'],
  ['npm run build && node', 'perf/ scripts: minutes long, and rebuilding would pull dist/ from under the other tests'],
  ['npx comfyui-worker --simulate', 'a server that does not return: test/cli/serve.test.ts starts it so and stops it'],
  ['mkdir -p models/checkpoints', 'needs a real checkpoint file, for Docker Compose'],
];

interface Command {
  /** The ## section it sits in. */
  section: string;
  text: string;
  line: number;
}

/** Every command of every ```bash block: continuation lines and quotes spanning lines joined. */
function readmeCommands(): Command[] {
  const out: Command[] = [];
  let section = '';
  let inBash = false;
  let current = '';
  let start = 0;
  README.split('\n').forEach((line, index) => {
    if (!inBash) {
      if (line.startsWith('## ')) section = line.slice(3);
      if (line.trim() === '```bash') inBash = true;
      return;
    }
    if (line.trim() === '```') {
      if (current !== '') throw new Error(`README line ${start}: a command does not end: ${current}`);
      inBash = false;
      return;
    }
    if (current === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (current === '') start = index + 1;
    current += (current === '' ? '' : '\n') + line;
    if (line.endsWith('\\')) return;
    // A quote left open (a JSON body over several lines): bash says the command is not complete.
    if (spawnSync('bash', ['-n', '-c', current]).status !== 0) return;
    out.push({ section, text: current, line: start });
    current = '';
  });
  return out;
}

const isCurl = (c: Command) => c.text.startsWith('curl ');
const isSimulate = (c: Command) => /(^|\s)npm run simulate(\s|$)/.test(c.text);
const isCli = (c: Command) => c.text.startsWith('npx comfyui-worker ');
const notRun = (c: Command) => NOT_RUN.find(([prefix]) => c.text.startsWith(prefix));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Started {
  child: ChildProcess;
  port: number;
  output: () => string;
}
const started: Started[] = [];

/**
 * Runs a README `npm run simulate` command as it is written, but on a free port, with its own
 * database and benchmark cache, and without the pre-script's rebuild (the build is `npm test`'s).
 */
async function startFromReadme(command: string, extraEnv: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const dir = tempDir('readme-');
  const text = command
    .replace(/VAST_TCP_PORT_3000=3000/, `VAST_TCP_PORT_${port}=${port}`)
    .replace(/npm run simulate/, 'npm run --ignore-scripts simulate');
  const child = spawn('bash', ['-c', text], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      API_HOST: '127.0.0.1',
      API_PORT: String(port),
      WORKER_PORT: String(port),
      SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
      BENCHMARK_CACHE_PATH: path.join(dir, '.has_benchmark'),
      LOG_LEVEL: 'info',
      ...extraEnv,
    },
  });
  let log = '';
  child.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const entry = { child, port, output: () => log };
  started.push(entry);
  // Every door serves its API description once it listens.
  await until(
    async () => (await status(`http://127.0.0.1:${port}/openapi.json`)) === 200,
    60_000,
    () => `${text}\n${log}`,
  );
  return entry;
}

async function status(url: string, init?: RequestInit): Promise<number> {
  try {
    const res = await fetch(url, init);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Runs a README curl with the host and port rewritten; exit status 0 means a non-error answer. */
function runCurl(command: string, ports: Record<string, number>): { ok: boolean; output: string } {
  const text = command.replace(/127\.0\.0\.1:(8000|3000)/g, (_m, port: string) => `127.0.0.1:${ports[port]}`);
  const result = spawnSync('bash', ['-c', `curl() { command curl --fail-with-body --max-time 60 "$@"; }\n${text}`], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', API_KEY, ADMIN_API_KEY },
  });
  return { ok: result.status === 0, output: `${text}\n→ exit ${result.status}\n${result.stdout}${result.stderr}`.slice(0, 2000) };
}

afterAll(async () => {
  for (const { child } of started) {
    if (child.exitCode !== null || child.pid === undefined) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 15_000)))]);
    clearTimeout(timer);
    if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
  }
});

const commands = readmeCommands();

test('every README command is run here or listed with the reason it is not', () => {
  expect(commands.length).toBeGreaterThan(25);
  const unclassified = commands
    .filter((c) => !isCurl(c) && !isSimulate(c) && !isCli(c) && !notRun(c))
    .map((c) => `line ${c.line}: ${c.text}`);
  expect(unclassified).toEqual([]);
  // Each NOT_RUN entry still names a command of the README.
  for (const [prefix] of NOT_RUN) expect(commands.some((c) => c.text.startsWith(prefix))).toBe(true);
});

test('every curl example answers a non-error status, against a worker started as the README says', async () => {
  expect(fs.existsSync(path.join(ROOT, 'dist', 'worker', 'main.js'))).toBe(true); // built by `npm test`
  const simulate = commands.filter(isSimulate);
  const quickStart = simulate.find((c) => c.section === 'Quick start');
  const runpod = simulate.find((c) => c.section.startsWith('The RunPod door'));
  const vast = simulate.find((c) => c.section.startsWith('The Vast.ai door'));
  expect([quickStart, runpod, vast].every((c) => c !== undefined)).toBe(true);

  // The HTTP door as the quick start starts it; /comfy/* needs COMFY_PROXY (its section says so),
  // and "Access control" needs the keys set.
  // One after the other: four at once would load a shared machine for nothing.
  const http = await startFromReadme(quickStart!.text, { COMFY_PROXY: 'true' });
  const keyed = await startFromReadme(quickStart!.text, { API_KEY, ADMIN_API_KEY });
  const local = await startFromReadme(runpod!.text);
  const vastDoor = await startFromReadme(vast!.text);
  const httpUrl = `http://127.0.0.1:${http.port}`;
  // The job the /status and /admin/job examples name, ended before they run.
  const created = await fetch(`${httpUrl}/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      input: {
        request_id: EXAMPLE_JOB_ID,
        workflow_json: JSON.parse(fs.readFileSync(path.join(ROOT, 'misc/example_workflow_api.json'), 'utf8')),
      },
    }),
  });
  expect(created.status).toBe(200);
  await until(
    async () =>
      ((await (await fetch(`${httpUrl}/status/${EXAMPLE_JOB_ID}`)).json()) as { status: string }).status === 'completed',
    30_000,
    () => 'the example job to complete',
  );
  // The Vast door answers /health 200 once its benchmark has run.
  await until(
    async () => (await status(`http://127.0.0.1:${vastDoor.port}/health`)) === 200,
    60_000,
    () => vastDoor.output(),
  );

  const failures: string[] = [];
  let ran = 0;
  // The command-line client's examples (before the curls: one of them deletes the example job), against the quick start's worker (COMFYUI_WORKER_URL stands
  // for its default address), in a scratch folder holding misc/ and a photo.png; `npx comfyui-worker`
  // is the clone's own bin.
  const cliDir = tempDir('readme-cli-');
  fs.symlinkSync(path.join(ROOT, 'misc'), path.join(cliDir, 'misc'));
  const example = (await (await fetch(`${httpUrl}/status/${EXAMPLE_JOB_ID}`)).json()) as {
    result: { output: Array<{ data: string }> };
  };
  fs.writeFileSync(path.join(cliDir, 'photo.png'), Buffer.from(example.result.output[0]!.data, 'base64'));
  for (const command of commands.filter((c) => isCli(c) && !notRun(c))) {
    const text = command.text.replace(/^npx comfyui-worker /, `node ${path.join(ROOT, 'cli', 'bin.js')} `);
    const result = spawnSync('bash', ['-c', text], {
      cwd: cliDir,
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '', COMFYUI_WORKER_URL: httpUrl },
    });
    ran++;
    if (result.status !== 0)
      failures.push(`README line ${command.line}:\n${text}\n→ exit ${result.status}\n${result.stdout}${result.stderr}`);
  }
  expect(fs.readdirSync(path.join(cliDir, 'out')).length).toBeGreaterThanOrEqual(3);

  for (const command of commands.filter((c) => isCurl(c) && !notRun(c))) {
    const door = command.section.startsWith('The Vast.ai door')
      ? vastDoor
      : command.section.startsWith('The RunPod door')
        ? local
        : /\$(ADMIN_)?API_KEY/.test(command.text)
          ? keyed
          : http;
    const result = runCurl(command.text, { '8000': door.port, '3000': vastDoor.port });
    ran++;
    if (!result.ok) failures.push(`README line ${command.line}:\n${result.output}`);
  }
  expect(failures).toEqual([]);
  expect(ran).toBeGreaterThan(15);
});
