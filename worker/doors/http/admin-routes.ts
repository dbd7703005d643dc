// The standalone HTTP API's /admin routes: cleanup and stuck-job reset on demand (the same
// operations the background upkeep runs), and deleting one ended job.
import { Router } from 'express';
import { invalidField } from '../../errors';
import type { DoorContext } from '../door';
import { queryNumber } from './query';

/** Mounted under /admin. */
export function adminRoutes(deps: Pick<DoorContext, 'config' | 'jobs' | 'upkeep'>): Router {
  const router = Router();

  router.post('/cleanup', async (req, res) => {
    const hours = queryNumber(req.query.max_age_hours, 'max_age_hours', deps.config.upkeep.retentionHours);
    const deleted = await deps.upkeep.cleanup(hours);
    res.json({ message: `Cleaned up ${deleted} old jobs`, deleted });
  });

  router.post('/reset-stuck', async (req, res) => {
    const hours = queryNumber(req.query.max_running_time_hours, 'max_running_time_hours', deps.config.upkeep.stuckHours);
    const reset = await deps.upkeep.resetStuck(hours);
    res.json({ message: `Reset ${reset} stuck jobs`, reset });
  });

  router.delete('/job/:jobId', async (req, res) => {
    const job = await deps.jobs.require(req.params.jobId);
    if (!(await deps.jobs.deleteFinished(job.id))) {
      throw invalidField(
        'job_id',
        `Can only delete completed, failed or cancelled jobs; job ${job.id} is ${job.status} (cancel it with POST /cancel/${job.id})`,
      );
    }
    res.json({ message: `Job ${job.id} deleted successfully` });
  });

  return router;
}
