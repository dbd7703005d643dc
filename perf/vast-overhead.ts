// The Vast door's own cost per request: the same jobs through the Vast door's /generate/sync
// (signed envelope: envelope parsing, signature check, admission, in-flight accounting, reports
// running in the background) and through the HTTP door's /generate/sync, in one run against one
// simulator, interleaved in blocks. Prints both medians and the difference (target: < 2 ms), for
// url-only signatures (the current SDK: one RSA verify) and all-fields ones (two verifies under
// the default scheme "any", plus the replay guard). Then the door's CPU work alone, in-process.
//
//   npm run build && node dist/perf/vast-overhead.js [--jobs 200] [--exec-ms 10]
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startWorker, type RunningWorker } from '../worker/app';
import { loadConfig } from '../worker/config';
import { parseEnvelope } from '../worker/doors/vast/envelope';
import { LoadLedger } from '../worker/doors/vast/ledger';
import { parsePublicKey, SignatureVerifier } from '../worker/doors/vast/signature';
import { createLogger } from '../worker/observability/logger';
import { startSimulator } from '../simulator';
import { arg, median, percentile, report, timeEach } from './stats';

const JOBS = arg('--jobs', 200);
const EXEC_MS = arg('--exec-ms', 10);
const PUBLIC_URL = 'http://127.0.0.1:40123';

function payload(i: number) {
  return {
    input: {
      workflow_json: {
        '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: i % 16777215 } },
        '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'perf' } },
      },
    },
  };
}

/** The autoscaler's side: a key, signed auth_data as /route/ returns it, a sink for reports. */
async function startAutoscaler(): Promise<{ url: string; key: KeyObject; close(): Promise<void> }> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { connection: 'close' }).end(req.url === '/pubkey/' ? pem : '{}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    key: privateKey,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function authText(key: KeyObject, reqnum: number, fields: boolean): string {
  const message = fields
    ? `{\n    "cost": 1.0,\n    "endpoint": "perf",\n    "reqnum": ${reqnum},\n    "request_idx": ${reqnum},\n    "url": "${PUBLIC_URL}"\n}`
    : `{\n    "url": "${PUBLIC_URL}"\n}`;
  const signature = sign('sha256', Buffer.from(message), key).toString('base64');
  return `{"cost": 1.0, "endpoint": "perf", "reqnum": ${reqnum}, "request_idx": ${reqnum}, "signature": "${signature}", "url": "${PUBLIC_URL}"}`;
}

async function post(url: string, body: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const parsed = (await res.json()) as { output?: Array<{ data?: string }> };
  if (res.status !== 200 || !parsed.output?.[0]?.data) throw new Error(`${url} answered ${res.status}`);
}

async function main(): Promise<void> {
  const sim = await startSimulator({ nodeDelayMs: { EmptyImage: EXEC_MS } });
  const autoscaler = await startAutoscaler();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-vast-'));
  fs.writeFileSync(path.join(dir, '.has_benchmark'), '1000\n'); // no benchmark run: measure requests only
  const common = { COMFYUI_API_BASE: sim.url, API_HOST: '127.0.0.1', LOG_LEVEL: 'silent' };
  const start = (env: Record<string, string>): Promise<RunningWorker> =>
    startWorker(loadConfig({ ...common, ...env }), { logger: createLogger('silent') });
  const httpWorker = await start({ API_PORT: '0', SQLITE_DB_PATH: path.join(dir, 'http.db') });
  const vastWorker = await start({
    WORKER_MODE: 'vast',
    WORKER_PORT: '0',
    VAST_TCP_PORT_0: '40123',
    PUBLIC_IPADDR: '127.0.0.1',
    CONTAINER_ID: '1',
    REPORT_ADDR: autoscaler.url,
    SQLITE_DB_PATH: path.join(dir, 'vast.db'),
    BENCHMARK_CACHE_PATH: path.join(dir, '.has_benchmark'),
    MAX_QUEUE_TIME: '1000000',
  });
  while (!httpWorker.comfy.isReady || !vastWorker.comfy.isReady) await new Promise((r) => setTimeout(r, 10));
  // Wait until the Vast worker is loaded (public key fetched): a signed request then succeeds.
  let reqnum = 1;
  for (;;) {
    const res = await fetch(`${vastWorker.url}/health`);
    if (((await res.json()) as { status: string }).status === 'healthy') break;
    await new Promise((r) => setTimeout(r, 50));
  }

  const viaHttp = (i: number) => post(`${httpWorker.url}/generate/sync`, JSON.stringify(payload(i)));
  const viaVast = (fields: boolean) => {
    return async (i: number) => {
      const text = `{"auth_data": ${authText(autoscaler.key, reqnum++, fields)}, "session_id": null, "payload": ${JSON.stringify(payload(i))}}`;
      await post(`${vastWorker.url}/generate/sync`, text);
    };
  };

  await timeEach(20, (i) => viaHttp(1_000_000 + i));
  await timeEach(20, viaVast(false));
  const httpTimes: number[] = [];
  const urlTimes: number[] = [];
  const fieldTimes: number[] = [];
  for (let block = 0; block < JOBS / 20; block++) {
    httpTimes.push(...(await timeEach(20, (i) => viaHttp(block * 20 + i))));
    urlTimes.push(...(await timeEach(20, viaVast(false))));
    fieldTimes.push(...(await timeEach(20, viaVast(true))));
  }

  report('vast overhead (per request, end to end)', {
    jobs: JOBS,
    exec_ms: EXEC_MS,
    http_door_median_ms: median(httpTimes),
    http_door_p99_ms: percentile(httpTimes, 99),
    vast_url_signed_median_ms: median(urlTimes),
    vast_url_signed_p99_ms: percentile(urlTimes, 99),
    vast_fields_signed_median_ms: median(fieldTimes),
    overhead_url_median_ms: median(urlTimes) - median(httpTimes),
    overhead_fields_median_ms: median(fieldTimes) - median(httpTimes),
  });

  // The door's own CPU work for one request, without HTTP or ComfyUI (the signing is not timed).
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const verifier = new SignatureVerifier({ scheme: 'any', logger: createLogger('silent') });
  verifier.setKey(parsePublicKey(publicKey.export({ type: 'spki', format: 'pem' }).toString()));
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 10 });
  ledger.maxPerf = 1e9;
  const body = JSON.stringify(payload(1));
  const micro = (fields: boolean) => {
    const texts = Array.from(
      { length: 2000 },
      (_, i) => `{"auth_data": ${authText(privateKey, 10_000 + i + (fields ? 5_000 : 0), fields)}, "payload": ${body}}`,
    );
    const t0 = performance.now();
    for (const text of texts) {
      const parsed = parseEnvelope(text);
      if (!parsed.ok || !verifier.check(parsed.envelope).ok) throw new Error('door check failed');
      const admitted = ledger.admit(parsed.envelope.auth);
      if (admitted.ok) ledger.finish(admitted.entry, 'Success');
      ledger.ackFinished(1);
    }
    return (performance.now() - t0) / texts.length;
  };
  report('vast door CPU per request (envelope + signature + admission + accounting)', {
    url_signed_ms: micro(false),
    fields_signed_ms: micro(true),
  });

  await vastWorker.stop();
  await httpWorker.stop();
  await autoscaler.close();
  await sim.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
