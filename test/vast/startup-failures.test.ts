// Startup failures are reported to the autoscaler as a permanent error_msg: an unreachable public
// key, a failing or too-slow benchmark (no admission afterwards), a missing required variable
// (bootstrap report, then the worker stops), and a server that cannot launch.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startWorker } from '../../worker/app';
import { ConfigError, loadConfig } from '../../worker/config';
import { createLogger } from '../../worker/observability/logger';
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, until } from '../support/worker';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { statusShapeProblems } from './support/report-shape';
import {
  CONTAINER_ID,
  envelopeText,
  postText,
  PUBLIC_URL,
  quickPayload,
  startVastWorker,
  vastEnv,
  type VastTestWorker,
} from './support/vast-worker';

const FIXTURES = path.join(__dirname, 'fixtures');

let sim: Simulator;
let broken: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ stepDelayMs: 20 });
  broken = await startSimulator({ models: [] }); // no checkpoint: every SD1.5 prompt is rejected
});
afterAll(async () => {
  await sim?.close();
  await broken?.close();
});

async function withWorker(
  comfyUrl: string,
  env: Record<string, string>,
  body: (w: VastTestWorker, f: FakeAutoscaler) => Promise<void>,
  setup: (f: FakeAutoscaler) => void = () => undefined,
): Promise<void> {
  const f = await startFakeAutoscaler();
  setup(f);
  const w = await startVastWorker(comfyUrl, f, env);
  try {
    await body(w, f);
  } finally {
    await w.stop();
    await f.close();
  }
}

const errorReport = (f: FakeAutoscaler) => f.statusReports.find((r) => r.body.error_msg !== '');

test('unreachable public key (5 attempts, 1-2-4-8 s apart) → permanent error report, 401 for requests', async () => {
  await withWorker(
    sim.url,
    {},
    async (w, f) => {
      // Meanwhile (no key yet) every request is refused.
      const early = await postText(`${w.url}/generate/sync`, envelopeText(f.route({ url: PUBLIC_URL }).text, quickPayload()));
      expect(early.status).toBe(401);
      await until(() => errorReport(f) !== undefined, 25_000, 'an error report');
      const report = errorReport(f)!;
      expect(report.body.error_msg).toBe('Failed to get Serverless public key after all retry attempts');
      expect(report.body.max_perf).toBe(0);
      expect(statusShapeProblems(report.raw)).toEqual([]);
      expect(f.hits.filter((h) => h.path === '/pubkey/')).toHaveLength(5);
      // The error stays: the report the next rejection triggers carries it too, still not loaded.
      const count = f.statusReports.length;
      const later = await postText(`${w.url}/generate/sync`, envelopeText(f.route({ url: PUBLIC_URL }).text, quickPayload()));
      expect(later.status).toBe(401);
      await until(() => f.statusReports.length > count, 5_000, 'a later report');
      expect(f.statusReports.slice(count).every((r) => r.body.error_msg === report.body.error_msg && r.body.max_perf === 0)).toBe(
        true,
      );
    },
    (f) => {
      f.pubkeyStatus = 503;
    },
  );
}, 60_000);

test('a failing benchmark → error report naming the reason, no admission, no cache', async () => {
  await withWorker(broken.url, {}, async (w, f) => {
    await until(() => errorReport(f) !== undefined, 10_000, 'an error report');
    const report = errorReport(f)!.body;
    expect(report.error_msg).toMatch(/^Benchmark warm-up failed: /);
    expect(report.error_msg).toContain('ckpt_name');
    expect(report.max_perf).toBe(0);
    const res = await postText(`${w.url}/generate/sync`, envelopeText(f.route({ url: PUBLIC_URL }).text, quickPayload()));
    expect(res.status).toBe(503);
    expect(res.body.error).toContain('worker is in error state');
    expect(fs.existsSync(w.cachePath)).toBe(false);
    const bench = await getJson(`${w.url}/benchmark`);
    expect(bench.body).toMatchObject({ status: 'failed' });
    const health = await getJson(`${w.url}/health`);
    expect(health.status).toBe(503);
    expect(health.body.status).toBe('error');
  });
});

test('a too-slow benchmark (score below BENCHMARK_MIN_PERF) → error report, no admission, no cache', async () => {
  await withWorker(sim.url, { BENCHMARK_MIN_PERF: '1000' }, async (w, f) => {
    await until(() => errorReport(f) !== undefined, 10_000, 'an error report');
    expect(errorReport(f)!.body.error_msg).toMatch(/^Benchmark score \d+\.\d+\/s is below BENCHMARK_MIN_PERF 1000\/s$/);
    const res = await postText(`${w.url}/generate/sync`, envelopeText(f.route({ url: PUBLIC_URL }).text, quickPayload()));
    expect(res.status).toBe(503);
    expect(fs.existsSync(w.cachePath)).toBe(false);
    const bench = await getJson(`${w.url}/benchmark`);
    expect(bench.body.runs).toHaveLength(2);
    expect(bench.body.status).toBe('failed');
  });
});

test('a missing required variable: bootstrap failure report, then the worker stops with a clear message', async () => {
  const f = await startFakeAutoscaler();
  try {
    const env = vastEnv(sim.url, f);
    delete env.PUBLIC_IPADDR;
    delete env.VAST_TCP_PORT_0;
    const config = loadConfig(env);
    const started = startWorker(config, { logger: createLogger('silent') });
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/PUBLIC_IPADDR is not set; VAST_TCP_PORT_0 is not set/);
    expect(f.statusReports).toHaveLength(1);
    const report = f.statusReports[0]!;
    expect(Object.keys(report.body)).toEqual(['id', 'mtoken', 'version', 'error_msg', 'url']);
    expect(report.body).toMatchObject({ id: CONTAINER_ID, mtoken: 'master-token-1', version: '1.1.0', url: '' });
    expect(report.body.error_msg).toContain('PUBLIC_IPADDR is not set');
  } finally {
    await f.close();
  }
});

test('no CONTAINER_ID: reported with id 0', async () => {
  const f = await startFakeAutoscaler();
  try {
    const env = vastEnv(sim.url, f);
    delete env.CONTAINER_ID;
    await expect(startWorker(loadConfig(env), { logger: createLogger('silent') })).rejects.toThrow(/CONTAINER_ID is not set/);
    expect(f.statusReports[0]!.body).toMatchObject({ id: 0, url: PUBLIC_URL });
  } finally {
    await f.close();
  }
});

test('a certificate that does not match its key → "Worker Server failed to launch" report (kept)', async () => {
  const env = {
    USE_SSL: 'true',
    SSL_CERT_PATH: path.join(FIXTURES, 'instance.crt'),
    SSL_KEY_PATH: path.join(FIXTURES, 'other.key'),
  };
  await withWorker(sim.url, env, async (_w, f) => {
    await until(() => errorReport(f) !== undefined, 5_000, 'an error report');
    const report = errorReport(f)!.body;
    expect(report.error_msg).toMatch(/^Worker Server failed to launch: the certificate .*instance\.crt does not match the key/);
    expect(report.url).toBe('https://127.0.0.1:40123');
  });
});

test('a missing certificate file → "Worker Server failed to launch" report', async () => {
  const env = {
    USE_SSL: 'true',
    SSL_CERT_PATH: path.join(FIXTURES, 'missing.crt'),
    SSL_KEY_PATH: path.join(FIXTURES, 'instance.key'),
  };
  await withWorker(sim.url, env, async (_w, f) => {
    await until(() => errorReport(f) !== undefined, 5_000, 'an error report');
    expect(errorReport(f)!.body.error_msg).toMatch(/^Worker Server failed to launch: .*missing\.crt/);
  });
});

test('a port already taken (a second instance) → "Worker Server failed to launch" report', async () => {
  const taken = http.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as AddressInfo).port;
  try {
    await withWorker(sim.url, { WORKER_PORT: String(port), [`VAST_TCP_PORT_${port}`]: '40123' }, async (_w, f) => {
      await until(() => errorReport(f) !== undefined, 5_000, 'an error report');
      expect(errorReport(f)!.body.error_msg).toMatch(
        /^Worker Server failed to launch: WORKER_PORT: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
      );
    });
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});
