// POST /generate/stream, as the API wrapper serves it: a text/event-stream of `data: <json>` events.
// First `queued`; then one event whenever the job's status, message, queue position or progress
// changes (driven by the job facade's watch: nothing is polled); last `final_result` with the
// Result, or `error` when the stream cannot follow the job to its end (the worker stopping).
// A client that goes away stops the stream, not the job, unless it asked for that
// (?cancel_on_disconnect=true).
import type { Response } from 'express';
import { WorkerError, toWorkerError } from '../../errors';
import type { JobQueue } from '../../jobs/queue';
import { TERMINAL_STATUSES, type JobProgress, type JobRecord } from '../../jobs/types';
import { StreamedJson } from '../../util/streamed-json';
import { toWrapperResult } from './result';

/** A comment line this often keeps proxies from closing a quiet stream (a long node, a long queue). */
const KEEPALIVE_MS = 15_000;

export interface StreamOptions {
  /** The client leaving cancels the job (as /generate/sync does). */
  cancelOnDisconnect: boolean;
}

/** Where a job stands, as the wrapper's stream events show it. */
export interface StatusEvent {
  request_id: string;
  status: string;
  message: string;
  timestamp: number;
  elapsed_time: number;
  queue_info: { preprocess_queue_size: number; generation_queue_size: number; postprocess_queue_size: number };
  queue_position: { current_queue: string; position: number; queue_size: number; estimated_wait_time: number | null };
  progress?: JobProgress;
}

/** The wrapper's progress messages: the step of the current node, else the node, else the start. */
function progressMessage(job: JobRecord, progress: JobProgress | undefined, fallback: string): string {
  const step = progress?.current_node_progress;
  if (step) return `Progress: ${Math.round((step.value / step.max) * 100)}% (${step.value}/${step.max})`;
  if (progress?.current_node) return `Processing node: ${progress.current_node}`;
  return job.promptId ? fallback : 'Generation started';
}

export async function statusEvent(queue: JobQueue, job: JobRecord, startedMs: number): Promise<StatusEvent> {
  const counts = await queue.counts();
  const position = await queue.queuePosition(job);
  const progress = job.status === 'running' ? await queue.progress(job.id) : undefined;
  const base = toWrapperResult(job, () => undefined, progress);
  const pending = job.status === 'pending';
  const event: StatusEvent = {
    request_id: job.id,
    status: base.status,
    message: job.status === 'running' ? progressMessage(job, progress, base.message) : base.message,
    timestamp: Date.now() / 1000,
    elapsed_time: (Date.now() - startedMs) / 1000,
    queue_info: { preprocess_queue_size: counts.pending, generation_queue_size: counts.running, postprocess_queue_size: 0 },
    queue_position: {
      current_queue: pending ? 'preprocess' : 'generation',
      // Jobs ahead of it (0: it is next), as /status's queue_position.
      position: position ?? 0,
      queue_size: pending ? counts.pending : counts.running,
      estimated_wait_time: null,
    },
  };
  if (progress) event.progress = progress;
  return event;
}

/** What makes one status event differ from the last (not the clock). */
function changeKey(event: StatusEvent): string {
  return JSON.stringify([event.status, event.message, event.queue_position.position, event.progress]);
}

/** Streams a submitted job's events until it ends (or the client leaves). */
export async function streamJob(queue: JobQueue, job: JobRecord, res: Response, opts: StreamOptions): Promise<void> {
  const startedMs = Date.now();
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Accel-Buffering', 'no');
  res.setHeader('Connection', 'keep-alive');
  res.flushHeaders();
  const send = (event: unknown) => {
    if (!res.destroyed) res.write(`data: ${JSON.stringify(event)}\n\n`);
  };
  send({ request_id: job.id, status: 'queued', message: 'Request queued', timestamp: startedMs / 1000 });

  let last = '';
  /** The job has ended: the last event is the final one, no status event after it. */
  let finished = false;
  // One read at a time: a change during a read is looked at once it is done (events stay in order).
  let reading: Promise<void> | undefined;
  let again = false;
  const read = async () => {
    const current = await queue.get(job.id);
    if (!current || TERMINAL_STATUSES.includes(current.status)) return;
    const event = await statusEvent(queue, current, startedMs);
    const key = changeKey(event);
    if (key === last || finished) return;
    last = key;
    send(event);
  };
  const update = () => {
    if (reading) {
      again = true;
      return;
    }
    reading = read()
      .catch(() => undefined) // the store away for a moment: the next change tries again
      .finally(() => {
        reading = undefined;
        if (again) {
          again = false;
          update();
        }
      });
  };
  const unwatch = queue.watch(job.id, update);
  const keepalive = setInterval(() => {
    if (!res.destroyed) res.write(': keep-alive\n\n');
  }, KEEPALIVE_MS);
  const gone = new AbortController();
  const onClose = () => {
    if (res.writableEnded) return;
    gone.abort();
    if (!opts.cancelOnDisconnect || queue.hasWaiters(job.id)) return;
    queue
      .cancel(job.id, new WorkerError(499, 'client_disconnected', 'Request cancelled due to client disconnection'))
      .catch(() => undefined); // gone meanwhile, or the store is away: the job runs to its end
  };
  res.on('close', onClose);
  let final: JobRecord;
  try {
    update();
    final = await queue.wait(job.id, gone.signal);
  } catch (err) {
    if (gone.signal.aborted) return;
    await reading;
    send({ request_id: job.id, status: 'error', message: `Stream error: ${toWorkerError(err).message}` });
    res.end();
    return;
  } finally {
    finished = true;
    unwatch();
    clearInterval(keepalive);
    res.off('close', onClose);
  }
  // A status read under way ends before the last event goes out.
  await reading;
  const body = new StreamedJson();
  const files = await queue.inlineFiles(final);
  const result = toWrapperResult(final, (output) => {
    const file = files(output);
    return file && body.base64(file);
  });
  const event = { request_id: job.id, status: 'final_result', result, elapsed_time: (Date.now() - startedMs) / 1000 };
  if (await body.writeTo(res, event, 'data: ', '\n\n')) res.end();
}
