// What becomes of the jobs a previous process left behind (it crashed, was killed, or its stop
// grace ran out). Jobs left `running` are reconciled with ComfyUI by the prompt id the worker
// minted and stored before submitting, so a restart never submits the same prompt twice:
//   - finished in /history        → its outputs are collected and the job ends as ComfyUI says;
//   - still queued or running     → it is watched again, with what is left of its deadline;
//   - unknown to ComfyUI          → it never got there, or ComfyUI restarted too: it runs again,
//                                   once (then it fails with a clear reason).
// Pending asynchronous jobs simply continue. Pending synchronous jobs are cancelled: the caller
// waiting on the connection is gone with the old process, and running its job now would make
// every job behind it wait for an answer nobody reads (the caller retries).
import { WorkerError } from '../errors';
import type { Logger } from '../observability/logger';
import type { JobEvents } from './events';
import { deliverFinished, type DeliveryDeps, type JobExecutor } from './execute';
import type { JobStore } from './store';
import type { JobRecord } from './types';

/** A job is submitted to ComfyUI at most this many times: its first run and one run after a restart. */
export const MAX_ATTEMPTS = 2;

export type LeftoverPlan =
  /** Watch the prompt to its end and deliver its outputs, within `timeoutMs`. */
  | { kind: 'resume'; execute: JobExecutor; timeoutMs: number; found: 'history' | 'queue' }
  /** ComfyUI never got the prompt (or forgot it): back to the head of the queue. */
  | { kind: 'requeue' }
  | { kind: 'fail'; error: WorkerError };

export interface Recovery {
  /** Looks the job's prompt up in ComfyUI; throws if ComfyUI cannot be asked (the runner retries). */
  plan(job: JobRecord): Promise<LeftoverPlan>;
}

export interface RecoveryDeps extends DeliveryDeps {
  jobTimeoutMs: number;
}

export function createRecovery(deps: RecoveryDeps): Recovery {
  const clock = deps.clock ?? Date.now;

  const resume =
    (promptId: string): JobExecutor =>
    async (job, secrets, signal, onEvent) => {
      const started = Math.round((job.startedAt ?? job.createdAt) * 1000);
      const entry = await deps.comfy.resumePrompt(promptId, signal, onEvent);
      const generated = clock();
      return deliverFinished(deps, job, secrets, entry, { warnings: [], started, submitted: started, generated }, signal);
    };

  const lost = (job: JobRecord): LeftoverPlan => {
    if (job.attempts < MAX_ATTEMPTS) return { kind: 'requeue' };
    return {
      kind: 'fail',
      error: new WorkerError(
        502,
        'prompt_lost',
        `Job ${job.id} was interrupted by a worker restart and ComfyUI does not know its prompt ${job.promptId ?? '(none)'}; ` +
          `it had already been run again once after an earlier restart, so it is not run again`,
      ),
    };
  };

  return {
    async plan(job) {
      const promptId = job.promptId;
      if (promptId === null) return lost(job);
      // Queue before history, as the watch does: ComfyUI writes history before it drops a prompt
      // from the queue, so "not queued" then "no history" really means unknown.
      const queue = await deps.comfy.http.queue();
      const entry = await deps.comfy.http.history(promptId);
      if (entry !== undefined) {
        // The work is done; collecting it gets a full budget whatever the old deadline was.
        return { kind: 'resume', execute: resume(promptId), timeoutMs: deps.jobTimeoutMs, found: 'history' };
      }
      if (queue.running.includes(promptId) || queue.pending.includes(promptId)) {
        const startedMs = (job.startedAt ?? job.createdAt) * 1000;
        const timeoutMs = startedMs + deps.jobTimeoutMs - clock();
        return { kind: 'resume', execute: resume(promptId), timeoutMs, found: 'queue' };
      }
      return lost(job);
    },
  };
}

/**
 * At startup, before the door opens: cancels pending synchronous jobs, whose callers went away
 * with the previous process. Returns how many were cancelled.
 */
export async function cancelOrphanedSyncJobs(store: JobStore, events: JobEvents, logger: Logger): Promise<number> {
  const reason = new WorkerError(
    499,
    'client_disconnected',
    'Cancelled at startup: the worker restarted before this synchronous job ran, and the caller waiting for it is gone; submit it again',
  );
  let cancelled = 0;
  // A shared queue's synchronous jobs may be waited for on another worker: the store cancels
  // those whose accepting worker is gone when a runner takes them (and in repair()).
  if (store.shared) return 0;
  for (const job of await store.pendingSync()) {
    if (!(await store.cancelPending(job.id, reason.toBody()))) continue;
    cancelled++;
    const final = await store.get(job.id);
    if (final) events.emit('finished', final);
  }
  if (cancelled > 0) logger.warn({ cancelled }, 'cancelled synchronous jobs whose callers left with the previous process');
  return cancelled;
}
