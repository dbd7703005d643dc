// The Vast door's routes: POST /generate/sync (the PyWorker envelope around an api-wrapper
// request), GET /health, GET /ping, GET /benchmark, GET /metrics, GET /openapi.json.
//
// /generate/sync follows PyWorker's order: parse JSON → envelope (422) → session (410) →
// signature (401) → worker in error (503) → queue-time rule (429) → admitted (counts as
// working) → the ctx runs the payload like the HTTP door's /generate/sync (FIFO, one at a
// time) → the Result. Whatever happens after admission, the request leaves the in-flight table.
import express, { type Request, type Response } from 'express';
import type { StartupBenchmark } from '../../../benchmark';
import { WRAPPER } from '../../contracts';
import { answerWhenFinished, notReadyError } from '../../contracts/wrapper/answer';
import { parseWrapperRequest } from '../../contracts/wrapper/request';
import { textBody, type ReadBody } from '../body';
import { parseEnvelope } from './envelope';
import { serveOpenApi } from '../openapi';
import { vastDoorDoc } from './openapi';
import { sendModelError, vastErrorHandler } from './errors';
import type { LoadLedger, Outcome } from './ledger';
import type { DoorContext } from '../door';
import type { SignatureVerifier } from './signature';
import type { VastState } from './state';

export interface VastAppDeps {
  ctx: DoorContext;
  ledger: LoadLedger;
  state: VastState;
  verifier: SignatureVerifier;
  benchmark: StartupBenchmark | undefined;
}

export function createVastApp(deps: VastAppDeps): express.Express {
  const { ctx, ledger, state, verifier } = deps;
  const { logger } = ctx;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // The raw text, so the signed auth_data numbers keep their exact tokens; input images are
  // decoded to spool files as they arrive and put back into the payload once it is parsed.
  const maxBytes = ctx.config.http.maxBodyBytes;
  const rawBody = textBody({ maxBytes, spool: () => ctx.jobs.inputSpool() }, express.text({ type: () => true, limit: maxBytes }));

  app.post('/generate/sync', rawBody, async (req: Request, res: Response) => {
    let gone = false;
    res.once('close', () => {
      if (!res.writableEnded) gone = true;
    });
    const body = req.body as ReadBody | string | undefined;
    const parsed = parseEnvelope(typeof body === 'string' ? body : (body?.text ?? ''));
    if (!parsed.ok) {
      res.status(parsed.status).json(parsed.body);
      return;
    }
    const envelope = parsed.envelope;
    if (typeof body === 'object') body.attach({ payload: envelope.payload });
    const { reqnum, request_idx } = envelope.auth;
    // ComfyUI has no sessions: any session id names one that does not exist.
    if (envelope.sessionId !== null) {
      res.status(410).json({ error: 'invalid session' });
      return;
    }
    if (!verifier.check(envelope).ok) {
      ledger.reject(envelope.auth);
      res.status(401).end();
      return;
    }
    if (state.errorMsg !== '') {
      ledger.reject(envelope.auth);
      res.status(503).json({ error: `worker is in error state: ${state.errorMsg}` });
      return;
    }
    const admission = ledger.admit(envelope.auth);
    if (!admission.ok) {
      logger.info(
        { reqnum, request_idx, waitS: admission.waitS, maxQueueTimeS: ledger.maxQueueTimeS },
        'vast: 429, queue too long',
      );
      res.status(429).end();
      return;
    }
    const entry = admission.entry;
    let outcome: Exclude<Outcome, 'Rejected'> = 'Error';
    try {
      if (!ctx.backend.isReady) throw notReadyError(ctx.backend);
      const { id, spec, secrets } = await parseWrapperRequest(envelope.payload, ctx.contracts, req.headers);
      if (gone) {
        outcome = 'Cancelled';
        return;
      }
      spec.meta = { ...spec.meta, vast: { request_idx, reqnum, endpoint: envelope.auth.endpoint } };
      const job = await ctx.jobs.submit({ id, source: 'vast', contract: WRAPPER, sync: true, spec, secrets });
      entry.jobId = job.id;
      const final = await answerWhenFinished(ctx.jobs, job, res);
      if (final === undefined || final.status === 'cancelled') outcome = 'Cancelled';
      else outcome = final.status === 'completed' ? 'Success' : 'Error';
    } catch (err) {
      outcome = 'Error';
      sendModelError(res, err, logger);
    } finally {
      ledger.finish(entry, outcome);
    }
  });

  app.get('/openapi.json', serveOpenApi(vastDoorDoc()));

  app.get('/ping', (_req, res) => {
    res.type('text/plain').send('pong');
  });

  app.get('/health', async (_req, res) => {
    const comfy = await ctx.backend.health();
    const status = state.errorMsg !== '' ? 'error' : state.loaded ? 'ready' : 'loading';
    const healthy = status === 'ready' && comfy.healthy;
    res.status(healthy ? 200 : 503).json({
      status: healthy ? 'healthy' : status === 'ready' ? 'unhealthy' : status,
      loaded: state.loaded,
      error_msg: state.errorMsg,
      benchmark: deps.benchmark?.status ?? 'failed',
      max_perf: ledger.maxPerf,
      cur_load: ledger.curLoad,
      num_requests_working: ledger.numWorking,
      estimated_wait_s: ledger.estimatedWaitS(),
      max_queue_time_s: ledger.maxQueueTimeS,
      signature_scheme: verifier.scheme,
      public_key_loaded: verifier.hasKey,
      comfyui: { url: ctx.backend.baseUrl, ...comfy },
    });
  });

  // Prometheus metrics, open like /health (the instance's port is reachable by the autoscaler only
  // through signed routes; these carry no job data).
  app.get('/metrics', async (_req, res) => {
    const { contentType, body } = await ctx.metrics.render();
    res.type(contentType).send(body);
  });

  app.get('/benchmark', (_req, res) => {
    res.json(deps.benchmark?.view() ?? { status: 'failed', error: state.errorMsg });
  });

  // Framework defaults, as aiohttp answers them: 405 on a known path, 404 elsewhere.
  const allowed: Record<string, string> = {
    '/generate/sync': 'POST',
    '/ping': 'GET, HEAD',
    '/health': 'GET, HEAD',
    '/benchmark': 'GET, HEAD',
    '/metrics': 'GET, HEAD',
    '/openapi.json': 'GET, HEAD',
  };
  app.use((req, res) => {
    const allow = allowed[req.path];
    if (allow !== undefined) res.status(405).set('Allow', allow).type('text/plain').send('405: Method Not Allowed');
    else res.status(404).type('text/plain').send('404: Not Found');
  });
  app.use(vastErrorHandler(logger, ctx.config.http.maxBodyBytes));
  return app;
}
