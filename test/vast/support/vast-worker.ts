// Starts a real worker in Vast mode against a simulator and a fake autoscaler, with a small and
// quick benchmark (the production default stays 8 runs at 512x512x20).
import path from 'node:path';
import { benchmarkFingerprint, loadBenchmarkSource, writeBenchmarkCache } from '../../../benchmark';
import { startWorker, type RunningWorker } from '../../../worker/app';
import { loadConfig, type Config } from '../../../worker/config';
import { createLogger } from '../../../worker/observability/logger';
import { tempDir } from '../../support/tmp';
import { startFakeAutoscaler, type FakeAutoscaler } from './fake-autoscaler';

/** The public URL the worker reports (PUBLIC_IPADDR + VAST_TCP_PORT_0). */
export const PUBLIC_URL = 'http://127.0.0.1:40123';
export const CONTAINER_ID = 4242;

export interface VastTestWorker extends RunningWorker {
  dir: string;
  cachePath: string;
}

export function vastEnv(comfyUrl: string, fake: FakeAutoscaler, env: Record<string, string> = {}): Record<string, string> {
  const dir = tempDir('vast-');
  return {
    WORKER_MODE: 'vast',
    COMFYUI_API_BASE: comfyUrl,
    API_HOST: '127.0.0.1',
    WORKER_PORT: '0',
    VAST_TCP_PORT_0: '40123',
    PUBLIC_IPADDR: '127.0.0.1',
    CONTAINER_ID: String(CONTAINER_ID),
    MASTER_TOKEN: 'master-token-1',
    REPORT_ADDR: fake.url,
    SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
    BENCHMARK_CACHE_PATH: path.join(dir, '.has_benchmark'),
    BENCHMARK_RUNS: '2',
    BENCHMARK_TEST_WIDTH: '64',
    BENCHMARK_TEST_HEIGHT: '64',
    BENCHMARK_TEST_STEPS: '3',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...env,
  };
}

export async function startVastWorker(
  comfyUrl: string,
  fake: FakeAutoscaler,
  env: Record<string, string> = {},
  opts: { cachedMaxPerf?: number; logLines?: string[] } = {},
): Promise<VastTestWorker> {
  const full = vastEnv(comfyUrl, fake, env);
  const cachePath = full.BENCHMARK_CACHE_PATH!;
  const config = loadConfig(full);
  if (opts.cachedMaxPerf !== undefined) writeCache(config, opts.cachedMaxPerf);
  // With logLines, every log line (JSON) is collected there, at level info and above.
  const lines = opts.logLines;
  const logger = lines
    ? createLogger('info', { write: (line: string) => void lines.push(line) })
    : createLogger(config.log.level);
  const worker = await startWorker(config, { logger });
  return { ...worker, dir: path.dirname(cachePath), cachePath };
}

/** A benchmark cache as this configuration would have written it (its fingerprint matches). */
export function writeCache(config: Config, maxPerf: number): void {
  // The simulator reports the recorded CPU device, named `cpu`.
  const fingerprint = benchmarkFingerprint(loadBenchmarkSource(config.benchmark), config.vast.workloadPerRequest, 'cpu');
  writeBenchmarkCache(config.benchmark.cachePath, maxPerf, fingerprint, {});
}

/** The envelope as the SDK client sends it, around the raw auth_data text. */
export function envelopeText(authText: string, payload: unknown, sessionId: string | null = null): string {
  return `{"auth_data": ${authText}, "session_id": ${JSON.stringify(sessionId)}, "payload": ${JSON.stringify(payload)}}`;
}

export async function postText(url: string, text: string): Promise<{ status: number; text: string; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
  const body = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, text: body, body: parsed };
}

/** A tiny quick workflow for requests (not the benchmark's). */
export function quickPayload(color = 1): { input: Record<string, unknown> } {
  return {
    input: {
      workflow_json: {
        '1': { class_type: 'EmptyImage', inputs: { width: 16, height: 16, batch_size: 1, color } },
        '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'vast' } },
      },
    },
  };
}

/** The last report, or undefined. */
export function lastStatus(fake: FakeAutoscaler): any {
  return fake.statusReports[fake.statusReports.length - 1]?.body;
}

/** Runs `body` with a fresh fake autoscaler and a Vast worker on it, and stops both afterwards. */
export async function withVastWorker(
  comfyUrl: string,
  env: Record<string, string>,
  body: (w: VastTestWorker, f: FakeAutoscaler) => Promise<void>,
  cachedMaxPerf?: number,
): Promise<void> {
  const f = await startFakeAutoscaler();
  const w = await startVastWorker(comfyUrl, f, env, { cachedMaxPerf });
  try {
    await body(w, f);
  } finally {
    await w.stop();
    await f.close();
  }
}
