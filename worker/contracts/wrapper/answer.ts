// Answering a caller that waits on its connection (generate/sync, on the HTTP and Vast doors):
// wait for the job's end and send the Result; if the caller goes away first, cancel the job so
// its prompt is interrupted and no GPU time is spent on an answer nobody reads.
import type { Response } from 'express';
import { WorkerError } from '../../errors';
import type { BackendStatus } from '../../jobs/backend';
import type { JobQueue } from '../../jobs/queue';
import type { JobRecord } from '../../jobs/types';
import { StreamedJson } from '../../util/streamed-json';
import { toWrapperResult, wrapperHttpStatus } from './result';

export function notReadyError(comfy: BackendStatus): WorkerError {
  const why =
    comfy.gpuFault !== undefined
      ? `has a GPU fault and needs a restart (${comfy.gpuFault})`
      : 'is not ready yet (waiting for /system_stats and the websocket); retry shortly';
  return new WorkerError(503, 'comfy_unavailable', `ComfyUI at ${comfy.baseUrl} ${why}`, { headers: { 'Retry-After': '5' } });
}

/**
 * Waits for the job's final state and sends it as a Result. Resolves with the final record, or
 * undefined when the client went away (the job is then cancelled).
 */
export async function answerWhenFinished(queue: JobQueue, job: JobRecord, res: Response): Promise<JobRecord | undefined> {
  const gone = new AbortController();
  const onClose = () => {
    if (res.writableEnded) return;
    gone.abort();
    // A retry with the same request_id may be waiting for this job too: it keeps it alive.
    if (queue.hasWaiters(job.id)) return;
    queue
      .cancel(job.id, new WorkerError(499, 'client_disconnected', 'Request cancelled due to client disconnection'))
      .catch(() => undefined); // gone meanwhile, or the store is away: the job runs to its end
  };
  res.on('close', onClose);
  let final: JobRecord;
  try {
    final = await queue.wait(job.id, gone.signal);
  } catch (err) {
    if (gone.signal.aborted) return undefined; // nobody to answer
    throw err;
  } finally {
    res.off('close', onClose);
  }
  await sendResult(queue, final, res);
  return final;
}

/** The job's Result with its inline outputs streamed from their files (never whole in memory). */
export async function sendResult(queue: JobQueue, job: JobRecord, res: Response): Promise<void> {
  const body = new StreamedJson();
  const files = await queue.inlineFiles(job);
  const result = toWrapperResult(
    job,
    (output) => {
      const file = files(output);
      return file && body.base64(file);
    },
    job.status === 'running' ? await queue.progress(job.id) : undefined,
  );
  const status = wrapperHttpStatus(job);
  // A 503 (ComfyUI unavailable, the worker stopping) is worth retrying shortly.
  if (status === 503 && !res.headersSent) res.setHeader('Retry-After', '5');
  await body.send(res, status, result);
}
