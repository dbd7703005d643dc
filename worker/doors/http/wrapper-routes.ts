// The api-wrapper contract's routes on the HTTP door: /generate/sync (wait for the answer),
// /generate (202, then poll /result/{id}), /cancel/{id} (any job, seed-style ones too) and
// /queue-info, with the wrapper's shapes and status codes.
import { Router } from 'express';
import { WRAPPER } from '../../contracts';
import { WorkerError } from '../../errors';
import { TERMINAL_STATUSES } from '../../jobs/types';
import type { DoorContext } from '../door';
import { answerWhenFinished, notReadyError, sendResult } from '../../contracts/wrapper/answer';
import { parseWrapperRequest } from '../../contracts/wrapper/request';
import { toWrapperResult, type WrapperResult } from '../../contracts/wrapper/result';
import { streamJob } from '../../contracts/wrapper/stream';
import { queryBool } from './query';

/** How long POST /cancel waits for a running job to let go, to report how it really ended. */
const CANCEL_SETTLE_MS = 5_000;

export function wrapperRoutes(deps: Pick<DoorContext, 'jobs' | 'backend' | 'contracts'>): Router {
  const router = Router();
  const { jobs: queue } = deps;

  /**
   * Admits a job, waits for it and answers with the Result envelope. While ComfyUI is still
   * starting (or away) the job waits for it in the queue, up to COMFY_READY_TIMEOUT_S (the runner
   * answers 503 after that); only a GPU that needs a restart is refused at once.
   */
  router.post('/generate/sync', async (req, res) => {
    if (deps.backend.gpuFault !== undefined) throw notReadyError(deps.backend);
    const { id, spec, secrets } = await parseWrapperRequest(req.body, deps.contracts, req.headers);
    // The caller may have gone while the request was checked (URL lookups): run nothing for nobody.
    if (req.socket.destroyed) return;
    const job = await queue.submit({ id, source: 'http', contract: WRAPPER, sync: true, spec, secrets });
    await answerWhenFinished(queue, job, res);
  });

  /**
   * Admits a job and streams its progress as server-sent events, ending with its Result. The job
   * outlives the stream (like /generate's) unless ?cancel_on_disconnect=true.
   */
  router.post('/generate/stream', async (req, res) => {
    const cancelOnDisconnect = queryBool(req.query.cancel_on_disconnect, 'cancel_on_disconnect', false);
    const { id, spec, secrets } = await parseWrapperRequest(req.body, deps.contracts, req.headers);
    if (req.socket.destroyed && cancelOnDisconnect) return;
    // A job that outlives its caller is an async one: it waits for ComfyUI and survives a restart.
    const job = await queue.submit({ id, source: 'http', contract: WRAPPER, sync: cancelOnDisconnect, spec, secrets });
    await streamJob(queue, job, res, { cancelOnDisconnect });
  });

  /** Admits a job and answers 202 at once; it waits in the queue even while ComfyUI is away. */
  router.post('/generate', async (req, res) => {
    const { id, spec, secrets } = await parseWrapperRequest(req.body, deps.contracts, req.headers);
    const job = await queue.submit({ id, source: 'http', contract: WRAPPER, sync: false, spec, secrets });
    res.status(202).json(toWrapperResult(job, () => undefined));
  });

  router.get('/result/:id', async (req, res) => {
    const job = await queue.get(req.params.id);
    if (!job) {
      const missing: WrapperResult = {
        id: req.params.id,
        status: 'failed',
        message: 'Request ID not found',
        output: [],
        timings: {},
        comfyui_response: {},
      };
      res.status(404).json(missing);
      return;
    }
    await sendResult(queue, job, res);
  });

  router.post('/cancel/:id', async (req, res) => {
    const id = req.params.id;
    const job = await queue.get(id);
    if (!job) {
      res.status(404).json({ error: `Request ${id} not found` });
      return;
    }
    if (TERMINAL_STATUSES.includes(job.status)) {
      res.json({ message: `Request ${id} is already ${job.status}`, status: job.status });
      return;
    }
    const outcome = await queue.cancel(id, new WorkerError(499, 'cancelled', 'Request cancelled by client'));
    // A running job lets go within moments (its prompt is interrupted); report how it ended.
    const final =
      outcome === 'cancelling'
        ? await queue.wait(id, AbortSignal.timeout(CANCEL_SETTLE_MS)).catch(() => undefined)
        : await queue.get(id);
    if (final?.status === 'cancelled') {
      res.json({ message: `Successfully cancelled request ${id}`, status: 'cancelled' });
    } else if (final && TERMINAL_STATUSES.includes(final.status)) {
      res.json({ message: `Request ${id} is already ${final.status}`, status: final.status });
    } else {
      res.json({ message: `Cancelling request ${id}: its prompt was interrupted`, status: 'cancelling' });
    }
  });

  /**
   * One queue here, mapped onto the wrapper's three: admitted jobs waiting (where MAX_QUEUE_SIZE
   * applies, as for the wrapper's preprocess queue), the job in ComfyUI, and no post-processing queue.
   */
  router.get('/queue-info', async (_req, res) => {
    const counts = await queue.counts();
    res.json({ preprocess_queue_size: counts.pending, generation_queue_size: counts.running, postprocess_queue_size: 0 });
  });

  return router;
}
