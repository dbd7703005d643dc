// One runner per ComfyUI backend (one ComfyUI per GPU), all taking from the same FIFO queue, so N
// jobs run at once on N GPUs and each prompt runs on exactly one backend. The pool is what the
// rest of the worker sees as "the runner": it wakes them all, finds the one that runs a job, and
// tells each what the others are doing (an idle backend takes the next job before a busy one
// queues it behind its own).
import type { WorkerError } from '../errors';
import type { Runner, Siblings, StopOutcome } from './runner';
import type { JobProgress } from './types';

export class RunnerPool {
  private readonly runners: Runner[] = [];

  /**
   * @param create builds the runner of one backend, given how it sees the others
   * @param backends the backends' base URLs, in the configured order (the first recovers the jobs
   *   of a backend no longer configured)
   */
  constructor(backends: string[], create: (backend: string, siblings: Siblings) => Runner) {
    for (const backend of backends) {
      const others = () => this.runners.filter((r) => r.backend !== backend);
      this.runners.push(
        create(backend, {
          idleElsewhere: () => others().some((r) => r.idleAndReady),
          readyElsewhere: () => others().some((r) => r.ready),
          activity: () => {
            for (const runner of others()) runner.wake();
          },
          owns: (job) => job.backend === backend || (backend === backends[0] && !backends.includes(job.backend ?? '')),
        }),
      );
    }
  }

  get all(): readonly Runner[] {
    return this.runners;
  }

  start(): void {
    for (const runner of this.runners) runner.start();
  }

  wake(): void {
    for (const runner of this.runners) runner.wake();
  }

  pause(): void {
    for (const runner of this.runners) runner.pause();
  }

  resume(): void {
    for (const runner of this.runners) runner.resume();
  }

  async stop(graceMs: number): Promise<void> {
    await Promise.all(this.runners.map((runner) => runner.stop(graceMs)));
  }

  /** The oldest job in flight on the first backend that has one. */
  get runningJobId(): string | undefined {
    for (const runner of this.runners) if (runner.runningJobId !== undefined) return runner.runningJobId;
    return undefined;
  }

  get runningJobIds(): string[] {
    return this.runners.flatMap((runner) => runner.runningJobIds);
  }

  get waitingJobIds(): string[] {
    return this.runners.flatMap((runner) => runner.waitingJobIds);
  }

  progressOf(jobId: string): JobProgress | undefined {
    for (const runner of this.runners) {
      const progress = runner.progressOf(jobId);
      if (progress) return progress;
    }
    return undefined;
  }

  abortRunning(jobId: string, reason: WorkerError): boolean {
    return this.runners.some((runner) => runner.abortRunning(jobId, reason));
  }

  /** Stops a job wherever it runs; a leftover of a previous process through the backend that has it. */
  async stopJob(jobId: string, reason: WorkerError): Promise<StopOutcome> {
    if (this.abortRunning(jobId, reason)) return 'aborting';
    for (const runner of this.runners) {
      const outcome = await runner.stopJob(jobId, reason);
      if (outcome !== false) return outcome;
    }
    return false;
  }
}
