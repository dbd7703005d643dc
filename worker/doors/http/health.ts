// GET /health: is ComfyUI reachable (a live /system_stats probe plus the websocket's state), is
// the job database usable, and how deep is the queue. 503 when the worker cannot serve.
import { Router } from 'express';
import type { ComfyClient } from '../../comfy/client';
import type { JobQueue } from '../../jobs/queue';

const PROBE_TIMEOUT_MS = 2_000;

export function healthRoutes(deps: { comfy: ComfyClient; queue: JobQueue }): Router {
  const router = Router();
  router.get('/health', async (_req, res) => {
    let reachable = true;
    let comfyError: string | undefined;
    try {
      await deps.comfy.http.systemStats(PROBE_TIMEOUT_MS);
    } catch (err) {
      reachable = false;
      comfyError = (err as Error).message;
    }
    let counts;
    let databaseError: string | undefined;
    try {
      counts = deps.queue.store.counts();
    } catch (err) {
      databaseError = (err as Error).message;
    }
    const websocket = deps.comfy.session.state;
    const healthy = reachable && websocket === 'open' && databaseError === undefined;
    const total = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : 0;
    res.status(healthy ? 200 : 503).json({
      status: healthy ? 'healthy' : 'unhealthy',
      database_path: deps.queue.store.path,
      job_stats: counts ? { ...counts, total } : null,
      queue_depth: counts ? counts.pending + counts.running : null,
      comfyui: {
        url: deps.comfy.baseUrl,
        reachable,
        websocket,
        ...(comfyError !== undefined ? { error: comfyError } : {}),
      },
      ...(databaseError !== undefined ? { database_error: databaseError } : {}),
    });
  });
  return router;
}
