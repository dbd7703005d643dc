// The api-wrapper contract's routes. POST /generate/sync admits a job, waits for it and answers
// with the Result envelope; if the client goes away first, its job is cancelled (and its prompt
// interrupted) so no GPU time is spent on an answer nobody reads.
import { Router, type Response } from 'express';
import type { ComfyClient } from '../../comfy/client';
import { WorkerError } from '../../errors';
import type { JobQueue } from '../../jobs/queue';
import type { JobRecord } from '../../jobs/types';
import { parseWrapperRequest, type WrapperContext } from '../wrapper/request';
import { toWrapperResult, wrapperHttpStatus } from '../wrapper/result';

export interface WrapperRouteDeps {
  queue: JobQueue;
  comfy: ComfyClient;
  wrapper: WrapperContext;
}

export function notReadyError(comfy: ComfyClient): WorkerError {
  return new WorkerError(
    503,
    'comfy_unavailable',
    `ComfyUI at ${comfy.baseUrl} is not ready yet (waiting for /system_stats and the websocket); retry shortly`,
    {
      headers: { 'Retry-After': '5' },
    },
  );
}

/** Runs a job for a caller that waits on this connection; answers with its final Result. */
export async function answerWhenFinished(queue: JobQueue, job: JobRecord, res: Response): Promise<void> {
  const gone = new AbortController();
  const onClose = () => {
    if (res.writableEnded) return;
    gone.abort();
    queue.cancel(job.id, new WorkerError(499, 'client_disconnected', 'Request cancelled due to client disconnection'));
  };
  res.on('close', onClose);
  let final: JobRecord;
  try {
    final = await queue.wait(job.id, gone.signal);
  } catch (err) {
    if (gone.signal.aborted) return; // nobody to answer
    throw err;
  } finally {
    res.off('close', onClose);
  }
  res.status(wrapperHttpStatus(final)).json(toWrapperResult(final, (o) => queue.inlineData(final, o)));
}

export function wrapperRoutes(deps: WrapperRouteDeps): Router {
  const router = Router();

  router.post('/generate/sync', async (req, res) => {
    if (!deps.comfy.isReady) throw notReadyError(deps.comfy);
    const { id, spec, secrets } = await parseWrapperRequest(req.body, deps.wrapper, req.headers);
    const job = deps.queue.submit({ id, door: 'wrapper', sync: true, spec, secrets });
    await answerWhenFinished(deps.queue, job, res);
  });

  return router;
}
