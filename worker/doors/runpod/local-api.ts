// The local test API (SERVE_API_LOCALLY=true, without RUNPOD_WEBHOOK_GET_JOB): RunPod's hosted
// endpoint API on API_HOST:API_PORT, backed by the job store with real background execution (the
// SDK's own local API only stores /run and runs the job when /status is called). Routes, also
// under /v2/<endpoint id>/ so a client given a RunPod base URL works unchanged:
//   POST /run → {id, status: "IN_QUEUE"}            POST /runsync[?wait=ms] → the job, or its status
//   GET|POST /status/{id}    POST /cancel/{id}      POST /retry/{id}    POST /purge-queue
//   GET /health → {jobs: {completed, failed, inProgress, inQueue, retried}, workers: {...}}
//   GET /metrics → the worker's Prometheus metrics, and GET /openapi.json (the API description):
//   not hosted-API routes, at the top only
// Statuses IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT (the job's deadline,
// JOB_TIMEOUT_S); delayTime and executionTime in ms. An input worker-comfyui refuses is accepted
// as the hosted API accepts it and the job is FAILED with worker-comfyui's message (kept in
// memory: it never reaches the store). A top-level `webhook` gets the job's /status body when it
// ends, retried as I2V_WEBHOOK_* say; `callback_url` goes through the worker's webhook outbox.
import { WORKER_COMFYUI } from '../../contracts';
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { AxiosInstance } from 'axios';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { retryDelayS, type RetryPolicy } from '../../webhooks/backoff';
import { WorkerError, invalidField, toWorkerError } from '../../errors';
import type { JobRecord, JobSpec } from '../../jobs/types';
import { assertPublicHttpUrl } from '../../net/address-guard';
import { deadline } from '../../net/deadline';
import type { Logger } from '../../observability/logger';
import { isObject } from '../../util/objects';
import { sleep } from '../../util/time';
import { parseWorkerComfyInput } from '../../contracts/worker-comfyui/input';
import type { ConnectionLimits } from '../../config';
import { createDoorServer } from '../limits';
import type { RunpodContext } from './context';
import { serveOpenApi } from '../openapi';
import { runpodLocalDoc } from './openapi';
import { handlerError, jobDoneBody, jobView, type RunpodJobView } from './result';

/** How long /purge-queue waits for jobs whose prompts it took out of ComfyUI's queue to end. */
const PURGE_SETTLE_MS = 5_000;
/** The hosted API's /runsync wait: 90 s unless ?wait= says otherwise (1 s to 300 s). */
const RUNSYNC_DEFAULT_MS = 90_000;
const RUNSYNC_MIN_MS = 1_000;
const RUNSYNC_MAX_MS = 300_000;
/** Refused jobs are kept (in memory) as long as the hosted API keeps a result. */
const REFUSED_TTL_MS = 30 * 60_000;
const REFUSED_MAX = 1_000;

/** What the door keeps in a job's spec to retry it: its input, without credentials. */
interface LocalMeta {
  input: unknown;
}

interface Refused {
  view: RunpodJobView;
  input: unknown;
  at: number;
}

export interface LocalApiOptions {
  /** Client for webhook URLs (private-address guard, proxies). */
  outbound: AxiosInstance;
}

/** A copy of the input without the credentials it carried (those are deleted when a job ends). */
export function withoutCredentials(input: unknown): unknown {
  let value = input;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  if (!isObject(value)) return value;
  const { comfy_org_api_key: _k1, api_key_comfy_org: _k2, ...rest } = value;
  if (isObject(rest.s3)) {
    const { access_key_id: _a, secret_access_key: _s, ...s3 } = rest.s3;
    rest.s3 = s3;
  }
  if (isObject(rest.webhook)) {
    const { secret: _secret, ...hook } = rest.webhook;
    rest.webhook = hook;
  }
  return rest;
}

function localMeta(job: JobRecord): LocalMeta | undefined {
  const meta = job.spec.meta?.runpod;
  return isObject(meta) && 'input' in meta ? { input: meta.input } : undefined;
}

export class LocalApi {
  private readonly ctx: RunpodContext;
  private readonly logger: Logger;
  private readonly outbound: AxiosInstance;
  private readonly refused = new Map<string, Refused>();
  /** Top-level webhook URLs of jobs not yet ended (in memory: a restart forgets them). */
  private readonly webhooks = new Map<string, string>();
  private readonly stopController = new AbortController();
  private readonly deliveries = new Set<Promise<void>>();
  private retried = 0;
  private readonly onFinished = (job: JobRecord) => {
    if (job.source !== 'runpod') return;
    const url = this.webhooks.get(job.id);
    if (url === undefined) return;
    this.webhooks.delete(job.id);
    void this.view(job).then(
      (view) => this.notify(url, view),
      (err: unknown) => this.logger.error({ requestId: job.id, err }, 'runpod: cannot build the webhook body'),
    );
  };

  constructor(ctx: RunpodContext, opts: LocalApiOptions) {
    this.ctx = ctx;
    this.logger = ctx.logger;
    this.outbound = opts.outbound;
    ctx.events.on('finished', this.onFinished);
  }

  private async view(job: JobRecord): Promise<RunpodJobView> {
    const waiting = job.status === 'running' && this.ctx.jobs.waitingInBackend().includes(job.id);
    return jobView(
      job,
      await this.ctx.jobs.inlineData(job),
      job.status === 'running' ? await this.ctx.jobs.progress(job.id) : undefined,
      waiting,
    );
  }

  /** A job of this door, or the refused one; undefined when unknown. */
  private async find(id: string): Promise<{ job?: JobRecord; refused?: Refused } | undefined> {
    const job = await this.ctx.jobs.get(id);
    if (job?.source === 'runpod') return { job };
    this.expireRefused();
    const refused = this.refused.get(id);
    return refused ? { refused } : undefined;
  }

  private expireRefused(): void {
    const cutoff = Date.now() - REFUSED_TTL_MS;
    for (const [id, entry] of this.refused) {
      if (entry.at >= cutoff && this.refused.size <= REFUSED_MAX) break;
      this.refused.delete(id);
    }
  }

  /**
   * Admits a /run or /runsync body: a stored job, or a refused one (FAILED with worker-comfyui's
   * message). Errors of the request itself (not an object, a bad webhook URL, a full queue) throw.
   */
  private async admit(body: unknown, id: string): Promise<RunpodJobView> {
    if (!isObject(body)) throw invalidField('body', 'must be a JSON object: {"input": {...}, "webhook"?: "<url>"}');
    const webhook = body.webhook;
    if (webhook !== undefined && webhook !== null && webhook !== '') {
      if (typeof webhook !== 'string') throw invalidField('webhook', 'must be a URL string');
      await assertPublicHttpUrl(webhook, 'webhook', { allowPrivate: this.ctx.config.inputs.allowPrivateUrls });
    }
    const hook = typeof webhook === 'string' && webhook !== '' ? webhook : undefined;
    let parsed;
    try {
      parsed = await parseWorkerComfyInput(body.input, this.ctx.contract, 'input');
    } catch (err) {
      const error = toWorkerError(err);
      if (error.status >= 500) throw error;
      const output = jobDoneBody(handlerError(error.toBody()), false);
      const view: RunpodJobView = { id, status: 'FAILED', delayTime: 0, executionTime: 0 };
      if (output.output !== undefined) view.output = output.output;
      if (output.error !== undefined) view.error = output.error;
      this.expireRefused();
      this.refused.set(id, { view, input: withoutCredentials(body.input), at: Date.now() });
      if (hook !== undefined) this.notify(hook, view);
      return view;
    }
    const spec: JobSpec = { ...parsed.spec, meta: { ...parsed.spec.meta, runpod: { input: withoutCredentials(body.input) } } };
    if (hook !== undefined) this.webhooks.set(id, hook);
    try {
      const job = await this.ctx.jobs.submit({
        id,
        source: 'runpod',
        contract: WORKER_COMFYUI,
        sync: false,
        spec,
        secrets: parsed.secrets,
      });
      return await this.view(job);
    } catch (err) {
      this.webhooks.delete(id);
      throw err;
    }
  }

  /** POSTs the job's view to a top-level webhook, in the background, retried with backoff. */
  private notify(url: string, view: RunpodJobView): void {
    const { retries, backoffS, maxBackoffS, timeoutS } = this.ctx.config.webhooks;
    const policy: RetryPolicy = { retries, baseS: backoffS, maxS: maxBackoffS };
    const delivery = (async () => {
      const text = JSON.stringify(view);
      for (let attempt = 0; attempt <= policy.retries; attempt++) {
        if (attempt > 0) await sleep(retryDelayS(policy, attempt) * 1000, this.stopController.signal);
        const limit = deadline(timeoutS * 1000, this.stopController.signal);
        try {
          const res = await this.outbound.post(url, text, {
            headers: { 'Content-Type': 'application/json', 'User-Agent': 'comfyui-worker' },
            timeout: timeoutS * 1000,
            signal: limit.signal,
            responseType: 'stream',
          });
          (res.data as { destroy(): void }).destroy();
          if (res.status >= 200 && res.status < 300) return;
          this.logger.warn({ requestId: view.id, status: res.status, attempt }, 'runpod: webhook refused');
        } catch (err) {
          if (this.stopController.signal.aborted) return;
          const code = (err as { code?: string }).code;
          this.logger.warn({ requestId: view.id, err: code ?? (err as Error).message, attempt }, 'runpod: webhook failed');
        } finally {
          limit.done();
        }
      }
      this.logger.error({ requestId: view.id }, 'runpod: webhook not delivered; giving up');
    })().catch(() => undefined);
    this.deliveries.add(delivery);
    void delivery.finally(() => this.deliveries.delete(delivery));
  }

  private async runsync(req: Request, res: Response): Promise<void> {
    const raw = typeof req.query.wait === 'string' ? Number(req.query.wait) : RUNSYNC_DEFAULT_MS;
    if (!Number.isFinite(raw)) throw invalidField('wait', 'must be a number of milliseconds');
    const waitMs = Math.min(Math.max(raw, RUNSYNC_MIN_MS), RUNSYNC_MAX_MS);
    const id = `sync-${randomUUID()}`;
    const admitted = await this.admit(req.body, id);
    if (admitted.status === 'FAILED') {
      res.json(admitted);
      return;
    }
    // The caller leaving ends the wait, not the job (it can still be read with /status).
    const stop = new AbortController();
    res.once('close', () => stop.abort());
    const timer = setTimeout(() => stop.abort(), waitMs);
    try {
      const job = await this.ctx.jobs.wait(id, stop.signal).catch(() => this.ctx.jobs.get(id));
      if (!res.destroyed && job) res.json(await this.view(job));
    } finally {
      clearTimeout(timer);
    }
  }

  private async status(id: string, res: Response): Promise<void> {
    const found = await this.find(id);
    if (!found) {
      res.status(404).json({ id, status: 'FAILED', error: 'Job ID not found' });
      return;
    }
    res.json(found.job ? await this.view(found.job) : found.refused?.view);
  }

  private async cancel(id: string, res: Response): Promise<void> {
    const found = await this.find(id);
    if (!found) {
      res.status(404).json({ id, status: 'FAILED', error: 'Job ID not found' });
      return;
    }
    if (found.job) {
      const outcome = await this.ctx.jobs.cancel(id, new WorkerError(499, 'cancelled', 'Job cancelled by the client (/cancel)'));
      if (outcome !== 'already_finished') {
        res.json({ id, status: 'CANCELLED' });
        return;
      }
      res.json(await this.view((await this.ctx.jobs.get(id)) ?? found.job));
      return;
    }
    res.json(found.refused?.view);
  }

  private async retry(id: string, res: Response): Promise<void> {
    const found = await this.find(id);
    if (!found) {
      res.status(404).json({ id, status: 'FAILED', error: 'Job ID not found' });
      return;
    }
    const status = found.job ? (await this.view(found.job)).status : found.refused?.view.status;
    if (status !== 'FAILED' && status !== 'TIMED_OUT') {
      res.status(400).json({ id, status, error: `Job ${id} is ${status}; only FAILED or TIMED_OUT jobs can be retried` });
      return;
    }
    const input = found.job ? localMeta(found.job)?.input : found.refused?.input;
    if (found.job && input === undefined) {
      res.status(400).json({ id, status, error: `Job ${id} did not come through this API; it cannot be retried here` });
      return;
    }
    this.refused.delete(id);
    const view = await this.admit({ input }, id);
    this.retried++;
    res.json({ id, status: view.status });
  }

  private async purge(res: Response): Promise<void> {
    let removed = 0;
    const leaving: Array<Promise<unknown>> = [];
    for (const id of await this.ctx.jobs.pendingOf('runpod')) {
      const outcome = await this.ctx.jobs.cancel(id, new WorkerError(499, 'cancelled', 'Removed from the queue (/purge-queue)'));
      if (outcome === 'cancelled') removed++;
      if (outcome === 'cancelling') {
        // Its prompt waited in ComfyUI's queue: it is taken out, and the job ends in a moment.
        removed++;
        leaving.push(this.ctx.jobs.wait(id, AbortSignal.timeout(PURGE_SETTLE_MS)).catch(() => undefined));
      }
    }
    await Promise.all(leaving);
    res.json({ removed, status: 'completed' });
  }

  private async health(res: Response): Promise<void> {
    const counts = await this.ctx.jobs.counts();
    // A prompt handed to ComfyUI early, behind the running one, still counts as queued.
    const waiting = this.ctx.jobs.waitingInBackend().length;
    const busy = counts.running > 0;
    const ready = this.ctx.comfy.isReady;
    res.json({
      jobs: {
        completed: counts.completed,
        failed: counts.failed,
        inProgress: counts.running - waiting,
        inQueue: counts.pending + waiting,
        retried: this.retried,
      },
      workers: { idle: ready && !busy ? 1 : 0, running: busy ? 1 : 0, initializing: ready ? 0 : 1 },
    });
  }

  routes(): express.Router {
    const router = express.Router();
    router.post('/run', async (req, res) => {
      const view = await this.admit(req.body, randomUUID());
      res.json({ id: view.id, status: view.status });
    });
    router.post('/runsync', (req, res) => this.runsync(req, res));
    router.get('/status/:id', (req, res) => this.status(req.params.id, res));
    router.post('/status/:id', (req, res) => this.status(req.params.id, res));
    router.post('/cancel/:id', (req, res) => this.cancel(req.params.id, res));
    router.post('/retry/:id', (req, res) => this.retry(req.params.id, res));
    router.post('/purge-queue', (_req, res) => this.purge(res));
    router.get('/health', (_req, res) => this.health(res));
    return router;
  }

  createServer(maxBodyBytes: number, limits: ConnectionLimits): http.Server {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use(express.json({ limit: maxBodyBytes }));
    app.get('/openapi.json', serveOpenApi(runpodLocalDoc()));
    app.get('/metrics', async (_req, res) => {
      const { contentType, body } = await this.ctx.metrics.render();
      res.type(contentType).send(body);
    });
    const routes = this.routes();
    app.use('/v2/:endpointId', routes);
    app.use(routes);
    app.use((req, res) => {
      res.status(404).json({ error: `No route ${req.method} ${req.path}` });
    });
    app.use(this.errorHandler(maxBodyBytes));
    return createDoorServer(app, limits);
  }

  /** The hosted API's error shape: `{"error": "<message>"}` with the status. */
  private errorHandler(maxBodyBytes: number): ErrorRequestHandler {
    return (err, req, res, _next) => {
      const type = (err as { type?: unknown }).type;
      const error =
        type === 'entity.parse.failed'
          ? new WorkerError(400, 'invalid_request', `body: malformed JSON (${(err as Error).message})`)
          : type === 'entity.too.large'
            ? new WorkerError(413, 'payload_too_large', `body: larger than MAX_BODY_MB (${maxBodyBytes} bytes)`)
            : toWorkerError(err);
      if (error.code === 'internal') this.logger.error({ err, method: req.method, path: req.path }, 'runpod: request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
      res.status(error.status).json({ error: error.message });
    };
  }

  /** Stops listening for job ends and webhook retries (a delivery in flight is abandoned). */
  async stop(): Promise<void> {
    this.ctx.events.off('finished', this.onFinished);
    this.stopController.abort(new Error('stopping'));
    await Promise.allSettled([...this.deliveries]);
  }
}
