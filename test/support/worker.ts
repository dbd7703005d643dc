// Starts a real worker (in this process, on an ephemeral port, with its own SQLite file) against
// a simulator, and waits until it is connected to it.
import path from 'node:path';
import { Writable } from 'node:stream';
import { startWorker, type RunningWorker, type WorkerOptions } from '../../worker/app';
import { loadConfig } from '../../worker/config';
import { createLogger } from '../../worker/observability/logger';
import { tempDir } from './tmp';

export interface TestWorker extends RunningWorker {
  dbPath: string;
  /** Every log line, when started with `captureLogs` (parsed JSON). */
  logs: Array<Record<string, unknown>>;
}

export async function startTestWorker(
  comfyUrl: string,
  env: Record<string, string> = {},
  ready = true,
  opts: WorkerOptions & { captureLogs?: boolean } = {},
): Promise<TestWorker> {
  const dir = tempDir('worker-');
  const dbPath = env.SQLITE_DB_PATH ?? path.join(dir, 'jobs.db');
  const config = loadConfig({
    COMFYUI_API_BASE: comfyUrl,
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    SQLITE_DB_PATH: dbPath,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const { captureLogs, ...workerOpts } = opts;
  const logger = captureLogs ? createLogger(env.LOG_LEVEL ?? 'debug', sink) : createLogger(config.log.level);
  const worker = await startWorker(config, { logger, ...workerOpts });
  if (ready) await until(() => worker.comfy.isReady, 10_000, 'worker connected to ComfyUI');
  return { ...worker, dbPath, logs };
}

/** Polls a condition (test-side only) until it holds or the deadline passes. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function postJson(
  url: string,
  body: unknown,
  init: RequestInit = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: init.signal,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Any method, optional JSON body and headers; the body is parsed as JSON when it is JSON. */
export async function callJson(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
