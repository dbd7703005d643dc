// What the RunPod door uses of the door context, and nothing more: the job facade, job events,
// whether ComfyUI is ready, the worker-comfyui contract's parse context, a logger and the
// configuration. `fromDoor` is the one place that builds it.
import type { Config } from '../../config';
import type { WorkerComfyContext } from '../../contracts/worker-comfyui/input';
import type { WorkerError } from '../../errors';
import type { JobEventSource } from '../../jobs/events';
import type { CancelOutcome, StatusCounts } from '../../jobs/queue';
import type { JobOutput, JobProgress, JobRecord, JobSource, NewJob } from '../../jobs/types';
import type { Logger } from '../../observability/logger';
import type { DoorContext } from '../door';

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
  /** Running jobs whose prompt still waits in ComfyUI's queue: shown as IN_QUEUE. */
  waitingInBackend(): string[];
  /** Ids of the queued jobs (pending, or waiting in ComfyUI's queue) of this door, oldest first. */
  pendingOf(source: JobSource): string[];
}

export interface RunpodContext {
  config: Config;
  logger: Logger;
  jobs: RunpodJobs;
  events: JobEventSource;
  comfy: { readonly isReady: boolean };
  contract: WorkerComfyContext;
  /** The /metrics text (the local test API serves it). */
  metrics: Pick<DoorContext['metrics'], 'render'>;
}

export function fromDoor(door: DoorContext): RunpodContext {
  const { jobs } = door;
  return {
    config: door.config,
    logger: door.logger,
    events: door.events,
    comfy: door.backend,
    metrics: door.metrics,
    contract: { inputs: door.contracts.inputs, delivery: door.contracts.delivery },
    jobs: {
      submit: (job) => jobs.submit(job),
      get: (id) => jobs.get(id),
      wait: (id, signal) => jobs.wait(id, signal),
      cancel: (id, reason) => jobs.cancel(id, reason),
      inlineData: (job, output) => jobs.inlineData(job, output),
      progress: (id) => jobs.progress(id),
      counts: () => jobs.counts(),
      waitingInBackend: () => jobs.waitingInBackend(),
      pendingOf(source) {
        // The facade has no query by source; this is for /purge-queue of the local test API only.
        const total = Object.values(jobs.counts()).reduce((a, b) => a + b, 0);
        const waiting = new Set(jobs.waitingInBackend());
        return jobs
          .recent(total)
          .filter((job) => job.status === 'pending' || waiting.has(job.id))
          .map((job) => job.id)
          .filter((id) => jobs.get(id)?.source === source)
          .reverse();
      },
    },
  };
}
