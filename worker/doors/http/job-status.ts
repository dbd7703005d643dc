// The body of GET /status/{job_id}, the seed's shape:
//   {job_id, status, result, error, created_at, started_at, completed_at}
// with epoch-second timestamps, `progress` while running and `queue_position` (pending jobs
// ahead) while pending. `result` is set once the job completed, in the shape the job came in:
// the worker-comfyui output object, or the API-wrapper Result for wrapper-form jobs. `error` is
// the message (a string) or null; `error_code` and, when there are any, `error_details` sit beside it.
import { contractOf, type FileData } from '../../contracts';
import type { JobQueue } from '../../jobs/queue';
import type { JobProgress, JobRecord, JobStatus } from '../../jobs/types';

export interface StatusBody {
  job_id: string;
  status: JobStatus;
  /** The contract's own shape (worker-comfyui's output object or the wrapper's Result). */
  result: unknown;
  error: string | null;
  error_code: string | null;
  error_details?: unknown;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  progress?: JobProgress | null;
  queue_position?: number;
  /** The job's webhook delivery: waiting (for the job), pending, delivered or failed. */
  webhook?: { status: string; attempts: number; last_error: string | null };
}

function resultOf(job: JobRecord, fileData: FileData): unknown {
  if (job.status !== 'completed' || job.result === null) return null;
  return contractOf(job.contract).statusResult(job, fileData);
}

/** @param fileData what goes in place of an inline output's base64 (a streamed placeholder) */
export async function statusBody(job: JobRecord, queue: JobQueue, fileData: FileData): Promise<StatusBody> {
  const body: StatusBody = {
    job_id: job.id,
    status: job.status,
    result: resultOf(job, fileData),
    error: job.error?.message ?? null,
    error_code: job.error?.code ?? null,
    created_at: job.createdAt,
    started_at: job.startedAt,
    completed_at: job.completedAt,
  };
  if (job.error?.details !== undefined) body.error_details = job.error.details;
  if (job.status === 'running') body.progress = (await queue.progress(job.id)) ?? null;
  if (job.status === 'pending') body.queue_position = await queue.queuePosition(job);
  const hook = await queue.webhookState(job.id);
  // The URL is left out: it may carry a token.
  if (hook) body.webhook = { status: hook.status, attempts: hook.attempts, last_error: hook.last_error };
  return body;
}
