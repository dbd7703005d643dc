// A finished job in RunPod's terms. Two steps, as in worker-comfyui + the RunPod SDK:
//   1. the handler's return value (worker-comfyui's): its output object, or `{error, details?}`;
//   2. the job-done body the SDK makes of it: `error` (and `refresh_worker`) taken out, the rest
//      under `output` (left out when empty), `"error"` when there is one, `"stopPod": true` when
//      the worker refreshes. So a failure with details is `{"output": {"details": [...]}, "error": ...}`.
// Also the hosted API's view of a job (/status of the local test API).
import type { ErrorBody } from '../../errors';
import type { JobOutput, JobProgress, JobRecord } from '../../jobs/types';
import { renderWorkerComfyError } from '../../contracts/worker-comfyui/errors';
import { toWorkerComfyOutput } from '../../contracts/worker-comfyui/output';

export type HandlerOutput = Record<string, unknown>;

export interface JobDoneBody {
  output?: unknown;
  error?: string;
  stopPod?: true;
}

/** Base64 of one of the job's inline outputs (looked up beforehand). */
export type InlineData = (output: JobOutput) => string | undefined;

/** What worker-comfyui's handler would have returned for this finished job. */
export function handlerOutput(job: JobRecord, inline: InlineData): HandlerOutput {
  if (job.status === 'completed' && job.result !== null) {
    return { ...toWorkerComfyOutput(job.result, inline) };
  }
  return handlerError(
    job.error ?? { code: 'internal', message: `Job ${job.id} ended ${job.status} without a reason`, status: 500 },
  );
}

export function handlerError(error: ErrorBody): HandlerOutput {
  return { ...renderWorkerComfyError(error) };
}

/** The SDK's mapping of a handler's return value to the job-done body. */
export function jobDoneBody(output: HandlerOutput, refresh: boolean): JobDoneBody {
  const { error, refresh_worker: refreshWorker, ...rest } = output;
  const body: JobDoneBody = {};
  if (Object.keys(rest).length > 0) body.output = rest;
  if (error !== undefined && error !== null && error !== '' && error !== false) body.error = String(error);
  if (refresh || refreshWorker === true) body.stopPod = true;
  return body;
}

// ---------------------------------------------------------------------------------------------
// The hosted API's job view.

export type RunpodStatus = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';

export interface RunpodJobView {
  id: string;
  status: RunpodStatus;
  delayTime?: number;
  executionTime?: number;
  output?: unknown;
  error?: string;
}

/** @param waiting a running job whose prompt still waits in ComfyUI's queue (shown as queued) */
export function runpodStatus(job: JobRecord, waiting = false): RunpodStatus {
  if (waiting) return 'IN_QUEUE';
  switch (job.status) {
    case 'pending':
      return 'IN_QUEUE';
    case 'running':
      return 'IN_PROGRESS';
    case 'completed':
      return 'COMPLETED';
    case 'cancelled':
      return 'CANCELLED';
    case 'failed':
      return job.error?.code === 'timeout' ? 'TIMED_OUT' : 'FAILED';
  }
}

const ms = (seconds: number) => Math.max(0, Math.round(seconds * 1000));

/** `/status/{id}`: delayTime (queued, ms) once started or ended, executionTime (ms) once ended. */
export function jobView(job: JobRecord, inline: InlineData, progress: JobProgress | undefined, waiting = false): RunpodJobView {
  const view: RunpodJobView = { id: job.id, status: runpodStatus(job, waiting) };
  if (waiting) return view;
  if (job.startedAt !== null) view.delayTime = ms(job.startedAt - job.createdAt);
  else if (job.completedAt !== null) view.delayTime = ms(job.completedAt - job.createdAt);
  if (job.startedAt !== null && job.completedAt !== null) view.executionTime = ms(job.completedAt - job.startedAt);
  if (job.status === 'running') {
    if (progress !== undefined) view.output = progress;
    return view;
  }
  if (job.status === 'pending') return view;
  const body = jobDoneBody(handlerOutput(job, inline), false);
  if (body.output !== undefined) view.output = body.output;
  if (body.error !== undefined) view.error = body.error;
  return view;
}
