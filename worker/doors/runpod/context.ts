// What the RunPod door uses of the core, and nothing more: the job facade, job events, whether
// ComfyUI is ready, the worker-comfyui contract's parse context, a logger and the configuration.
// `fromCore` is the one place that reaches into the core, so the door ports with it.
import type { Config } from '../../config';
import type { Core } from '../../core';
import type { WorkerError } from '../../errors';
import type { JobEvents } from '../../jobs/events';
import type { CancelOutcome } from '../../jobs/queue';
import type { StatusCounts } from '../../jobs/store';
import type { Door, JobOutput, JobProgress, JobRecord, NewJob } from '../../jobs/types';
import type { Logger } from '../../observability/logger';
import type { WorkerComfyContext } from '../worker-comfyui/input';

export interface RunpodJobs {
  submit(job: NewJob): JobRecord;
  get(id: string): JobRecord | undefined;
  /** Resolves with the job's final state; the signal ends the wait, not the job. */
  wait(id: string, signal?: AbortSignal): Promise<JobRecord>;
  cancel(id: string, reason: WorkerError): CancelOutcome;
  /** Base64 of an inline output's bytes. */
  inlineData(job: JobRecord, output: JobOutput): string | undefined;
  progress(id: string): JobProgress | undefined;
  counts(): StatusCounts;
  /** Ids of the pending jobs that came through this door, oldest first. */
  pendingOf(door: Door): string[];
}

export interface RunpodContext {
  config: Config;
  logger: Logger;
  jobs: RunpodJobs;
  events: JobEvents;
  comfy: { readonly isReady: boolean };
  contract: WorkerComfyContext;
}

export function fromCore(core: Core): RunpodContext {
  const { queue } = core;
  return {
    config: core.config,
    logger: core.logger,
    events: core.events,
    comfy: core.comfy,
    contract: { inputs: core.wrapper.inputs, delivery: core.wrapper.delivery },
    jobs: {
      submit: (job) => queue.submit(job),
      get: (id) => queue.get(id),
      wait: (id, signal) => queue.wait(id, signal),
      cancel: (id, reason) => queue.cancel(id, reason),
      inlineData: (job, output) => queue.inlineData(job, output),
      progress: (id) => queue.progress(id),
      counts: () => queue.store.counts(),
      pendingOf(door) {
        // The store has no query by door; this is for /purge-queue of the local test API only.
        const counts = queue.store.counts();
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        return queue.store
          .recent(total)
          .filter((job) => job.status === 'pending')
          .map((job) => job.id)
          .filter((id) => queue.get(id)?.door === door)
          .reverse();
      },
    },
  };
}
