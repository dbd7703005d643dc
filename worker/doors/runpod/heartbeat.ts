// RunPod's heartbeat: `GET <RUNPOD_WEBHOOK_PING>?job_id=<ids in flight>&runpod_version=<v>` every
// RUNPOD_PING_INTERVAL ms, each ping retried 3 times on 429/500/502/503/504 and bounded at twice
// the interval. The SDK pings from a separate process so a busy handler never delays it; here a
// worker thread does it, so nothing the main thread does (encoding a large output, writing it to
// SQLite, serialising a result) can hold a ping back. The thread only knows the URL, the headers
// and the ids the door last told it; it sends on a fixed rate, never waiting for an earlier ping.
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import type { Logger } from '../../observability/logger';

// Plain JavaScript, evaluated in the thread: it needs nothing but Node's own fetch and timers,
// and so runs the same from the compiled worker and from the TypeScript sources under test.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, intervalMs, timeoutMs, headers, version } = workerData;
const RETRY = new Set([429, 500, 502, 503, 504]);
let jobIds = [];
let stopped = false;
const report = (message) => { if (!stopped) parentPort.postMessage(message); };
const target = (ids) => {
  const query = [];
  if (ids.length > 0) query.push('job_id=' + encodeURIComponent(ids.join(',')));
  query.push('runpod_version=' + encodeURIComponent(version));
  return url + (url.includes('?') ? '&' : '?') + query.join('&');
};
async function ping() {
  const ids = jobIds;
  const sentAt = Date.now();
  report({ type: 'sending', sentAt, jobIds: ids });
  let status;
  let error;
  for (let attempt = 1; attempt <= 3 && !stopped; attempt++) {
    try {
      const res = await fetch(target(ids), { headers, signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer().catch(() => undefined);
      status = res.status;
      error = undefined;
      if (!RETRY.has(status)) break;
    } catch (err) {
      status = undefined;
      error = err && err.name === 'TimeoutError' ? 'timed out after ' + timeoutMs + ' ms'
        : String((err && err.cause && err.cause.code) || (err && err.message) || err);
      break;
    }
    if (attempt < 3) await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
  }
  report({ type: 'ping', sentAt, jobIds: ids, status, error });
}
parentPort.on('message', (message) => {
  if (message && message.type === 'jobs' && Array.isArray(message.ids)) jobIds = message.ids.map(String);
  if (message && message.type === 'stop') {
    stopped = true;
    clearInterval(timer);
    parentPort.close();
  }
});
const timer = setInterval(ping, intervalMs);
ping();
`;

const pingReport = z.object({
  type: z.enum(['sending', 'ping']),
  sentAt: z.number(),
  jobIds: z.array(z.string()),
  status: z.number().optional(),
  error: z.string().optional(),
});

export type PingReport = z.infer<typeof pingReport>;

export interface HeartbeatOptions {
  /** The ping URL with $RUNPOD_POD_ID filled in, without job_id/runpod_version. */
  url: string;
  intervalMs: number;
  headers: Readonly<Record<string, string>>;
  version: string;
  logger: Logger;
  /** Told of every ping as the thread sends it and once it is answered (tests, diagnostics). */
  onReport?: (report: PingReport) => void;
}

export class Heartbeat {
  private readonly opts: HeartbeatOptions;
  private worker: Worker | undefined;
  private failing = false;

  constructor(opts: HeartbeatOptions) {
    this.opts = opts;
  }

  start(): void {
    if (this.worker) return;
    const { url, intervalMs, headers, version, logger } = this.opts;
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { url, intervalMs, timeoutMs: intervalMs * 2, headers: { ...headers }, version },
    });
    worker.on('message', (raw: unknown) => {
      const parsed = pingReport.safeParse(raw);
      if (!parsed.success) return;
      this.onReport(parsed.data);
    });
    worker.on('error', (err) => logger.error({ err: err.message }, 'runpod: heartbeat thread failed'));
    // The thread must not keep a stopping process alive.
    worker.unref();
    this.worker = worker;
  }

  private onReport(report: PingReport): void {
    this.opts.onReport?.(report);
    if (report.type !== 'ping') return;
    const ok = report.status !== undefined && report.status >= 200 && report.status < 300;
    const { logger } = this.opts;
    if (ok) {
      if (this.failing) logger.info('runpod: heartbeat answered again');
      this.failing = false;
      logger.trace({ jobIds: report.jobIds }, 'runpod: heartbeat sent');
    } else {
      // Logged once per outage, then at debug: a ping every few seconds would flood the log.
      const fields = { status: report.status, error: report.error };
      if (this.failing) logger.debug(fields, 'runpod: heartbeat still failing');
      else logger.warn(fields, 'runpod: heartbeat failed');
      this.failing = true;
    }
  }

  /** The jobs the next pings carry. */
  setJobs(ids: string[]): void {
    this.worker?.postMessage({ type: 'jobs', ids });
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    worker.postMessage({ type: 'stop' });
    await worker.terminate();
  }
}
