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
  submit(job: NewJob): Promise<JobRecord>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Resolves with the job's final state; the signal ends the wait, not the job. */
  wait(id: string, signal?: AbortSignal): Promise<JobRecord>;
  cancel(id: string, reason: WorkerError): Promise<CancelOutcome>;
  /** Base64 of the job's inline outputs' bytes, by output. */
  inlineData(job: JobRecord): Promise<(output: JobOutput) => string | undefined>;
  progress(id: string): Promise<JobProgress | undefined>;
  counts(): Promise<StatusCounts>;
  /** Running jobs whose prompt still waits in ComfyUI's queue: shown as IN_QUEUE. */
  waitingInBackend(): string[];
  /** Ids of the queued jobs (pending, or waiting in ComfyUI's queue) of this door, oldest first. */
  pendingOf(source: JobSource): Promise<string[]>;
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
      inlineData: (job) => jobs.inlineData(job),
      progress: (id) => jobs.progress(id),
      counts: () => jobs.counts(),
      waitingInBackend: () => jobs.waitingInBackend(),
      async pendingOf(source) {
        // The facade has no query by source; this is for /purge-queue of the local test API only.
        const total = Object.values(await jobs.counts()).reduce((a, b) => a + b, 0);
        const waiting = new Set(jobs.waitingInBackend());
        const ids: string[] = [];
        for (const job of await jobs.recent(total)) {
          if (job.status !== 'pending' && !waiting.has(job.id)) continue;
          if ((await jobs.get(job.id))?.source === source) ids.push(job.id);
        }
        return ids.reverse();
      },
    },
  };
}
