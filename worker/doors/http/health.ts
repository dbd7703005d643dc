// GET /health: is ComfyUI reachable (a live /system_stats probe plus the websocket's state, for
// each backend), is the job database usable, and how deep is the queue. 503 when the worker
// cannot serve, or is stopping (`status: "stopping"`).
import { Router } from 'express';
import type { DoorContext } from '../door';

export function healthRoutes(deps: Pick<DoorContext, 'backend' | 'jobs' | 'config'>): Router {
  const router = Router();
  router.get('/health', async (_req, res) => {
    // Every backend (one per GPU): the worker is healthy while any of them can run jobs.
    const backends = await deps.backend.backends();
    const best = backends.find((b) => b.healthy) ?? backends[0];
    let counts;
    let databaseError: string | undefined;
    try {
      counts = await deps.jobs.counts();
    } catch (err) {
      databaseError = (err as Error).message;
    }
    // A stopping worker admits nothing: a load balancer should send the next request elsewhere.
    const stopping = deps.jobs.stopping;
    // An api-only worker has no backend of its own: it is healthy while it reaches the job store.
    const healthy = (backends.length === 0 || best?.healthy === true) && databaseError === undefined && !stopping;
    const total = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : 0;
    if (stopping) res.setHeader('Retry-After', '5');
    res.status(healthy ? 200 : 503).json({
      status: healthy ? 'healthy' : stopping ? 'stopping' : 'unhealthy',
      database_path: deps.jobs.storeInfo().path,
      job_stats: counts ? { ...counts, total } : null,
      queue_depth: counts ? counts.pending + counts.running : null,
      ...(deps.config.jobs.role !== 'all' ? { role: deps.config.jobs.role } : {}),
      comfyui: best,
      ...(backends.length > 1 ? { backends } : {}),
      ...(databaseError !== undefined ? { database_error: databaseError } : {}),
    });
  });
  return router;
}
