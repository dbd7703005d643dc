// The standalone HTTP API's job routes (the seed's /run, /status and /stats).
import { Router } from 'express';
import type { RecentJob } from '../../jobs/queue';
import { StreamedJson } from '../../util/streamed-json';
import type { DoorContext } from '../door';
import { statusBody } from './job-status';
import { queryBool } from './query';
import { parseRunRequest } from './run-request';

/** How many jobs `/stats?include_recent=true` lists, newest first. */
export const RECENT_JOBS = 50;

function recentBody(job: RecentJob) {
  return {
    id: job.id,
    status: job.status,
    created_at: job.createdAt,
    started_at: job.startedAt,
    completed_at: job.completedAt,
    error: job.error?.message ?? null,
  };
}

export function jobsRoutes(deps: Pick<DoorContext, 'jobs' | 'contracts'>): Router {
  const router = Router();
  const { jobs } = deps;

  /** Stores a job and answers at once; the job waits for ComfyUI if it is not ready yet. */
  router.post('/run', async (req, res) => {
    const { id, contract, spec, secrets } = await parseRunRequest(req.body, deps.contracts, req.headers);
    const job = await jobs.submit({ id, source: 'http', contract, sync: false, spec, secrets });
    res.json({ job_id: job.id, status: job.status });
  });

  router.get('/status/:jobId', async (req, res) => {
    const job = await jobs.require(req.params.jobId);
    // Inline outputs are streamed from their files into the answer.
    const body = new StreamedJson();
    const files = await jobs.inlineFiles(job);
    await body.send(
      res,
      200,
      await statusBody(job, jobs, (output) => {
        const file = files(output);
        return file && body.base64(file);
      }),
    );
  });

  router.get('/stats', async (req, res) => {
    const includeRecent = queryBool(req.query.include_recent, 'include_recent', false);
    const counts = await jobs.counts();
    res.json({
      total_jobs: Object.values(counts).reduce((a, b) => a + b, 0),
      pending_jobs: counts.pending,
      running_jobs: counts.running,
      completed_jobs: counts.completed,
      failed_jobs: counts.failed,
      cancelled_jobs: counts.cancelled,
      ...(includeRecent ? { recent_jobs: (await jobs.recent(RECENT_JOBS)).map(recentBody) } : {}),
    });
  });

  return router;
}
