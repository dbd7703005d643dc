// The api-wrapper contract's routes on the HTTP door.
import { Router } from 'express';
import type { ComfyClient } from '../../comfy/client';
import type { JobQueue } from '../../jobs/queue';
import { answerWhenFinished, notReadyError } from '../wrapper/answer';
import { parseWrapperRequest, type WrapperContext } from '../wrapper/request';

export interface WrapperRouteDeps {
  queue: JobQueue;
  comfy: ComfyClient;
  wrapper: WrapperContext;
}

export function wrapperRoutes(deps: WrapperRouteDeps): Router {
  const router = Router();

  /** Admits a job, waits for it and answers with the Result envelope. */
  router.post('/generate/sync', async (req, res) => {
    if (!deps.comfy.isReady) throw notReadyError(deps.comfy);
    const { id, spec, secrets } = await parseWrapperRequest(req.body, deps.wrapper, req.headers);
    // The caller may have gone while the request was checked (URL lookups): run nothing for nobody.
    if (req.socket.destroyed) return;
    const job = deps.queue.submit({ id, door: 'wrapper', sync: true, spec, secrets });
    await answerWhenFinished(deps.queue, job, res);
  });

  return router;
}
