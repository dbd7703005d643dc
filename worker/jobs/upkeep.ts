// Keeps the job database in shape: every CLEANUP_INTERVAL_S, ended jobs older than
// JOB_RETENTION_HOURS are deleted (their output files with them), jobs running longer than
// STUCK_JOB_HOURS are failed after their prompt is interrupted, and files no job refers to (left
// by a crash) are deleted. The same two operations serve
// /admin/cleanup and /admin/reset-stuck with other thresholds. Pending jobs never expire. A shared
// store's repairs (JobStore.repair) also run on a short interval of their own: a job left by an
// interrupted submission or a dead caller should not wait an hour for its end.
import { WorkerError } from '../errors';
import type { Logger } from '../observability/logger';
import type { RunnerPool } from './runner-pool';
import type { JobStore } from './store';

const HOUR_S = 3600;

export interface UpkeepOptions {
  store: JobStore;
  runner: RunnerPool;
  logger: Logger;
  intervalS: number;
  retentionHours: number;
  stuckHours: number;
  /** Run repair() this often too (a shared store: JOB_QUEUE_LOCK_S); else only with each pass. */
  repairIntervalS?: number;
}

export class Upkeep {
  private readonly opts: UpkeepOptions;
  private timer: NodeJS.Timeout | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private repairing = false;

  constructor(opts: UpkeepOptions) {
    this.opts = opts;
  }

  /**
   * Deletes old ended jobs now (safe beside recovery), then runs both operations every interval.
   * Stuck jobs are not looked at right away: a job left running by a previous process is
   * recovery's to reconcile, not to be failed as stuck.
   */
  start(): void {
    if (this.timer) return;
    void this.safely(async () => (await this.repair()) + (await this.cleanup(this.opts.retentionHours)));
    void this.sweep();
    this.timer = setInterval(() => void this.pass(), this.opts.intervalS * 1000);
    this.timer.unref();
    const { repairIntervalS } = this.opts;
    if (repairIntervalS !== undefined) {
      this.repairTimer = setInterval(() => {
        // One at a time: a slow Redis must not pile them up.
        if (this.repairing) return;
        this.repairing = true;
        void this.safely(() => this.repair()).finally(() => (this.repairing = false));
      }, repairIntervalS * 1000);
      this.repairTimer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.repairTimer);
    this.timer = undefined;
    this.repairTimer = undefined;
  }

  /** One scheduled pass. */
  async pass(): Promise<void> {
    await this.safely(() => this.repair());
    await this.safely(() => this.cleanup(this.opts.retentionHours));
    await this.safely(() => this.resetStuck(this.opts.stuckHours));
    await this.sweep();
  }

  /** Deletes the files no job refers to (a crash between writing and recording them). */
  async sweep(): Promise<number> {
    try {
      const deleted = await this.opts.store.sweepFiles();
      if (deleted > 0) this.opts.logger.info({ deleted }, 'deleted files no job refers to');
      return deleted;
    } catch (err) {
      this.opts.logger.error({ err }, 'job files sweep failed');
      return 0;
    }
  }

  /** Ends jobs the store finds no runner would end well (see JobStore.repair). */
  async repair(): Promise<number> {
    const repaired = await this.opts.store.repair();
    if (repaired > 0) this.opts.logger.warn({ repaired }, 'ended jobs whose submission was interrupted or whose caller is gone');
    return repaired;
  }

  /** Deletes completed, failed and cancelled jobs that ended more than `maxAgeHours` ago. */
  async cleanup(maxAgeHours: number): Promise<number> {
    const deleted = await this.opts.store.deleteFinishedBefore(this.opts.store.now() - maxAgeHours * HOUR_S);
    if (deleted > 0) this.opts.logger.info({ deleted, maxAgeHours }, 'deleted old jobs');
    return deleted;
  }

  /**
   * Fails jobs running for more than `maxRunningHours`: the running one is aborted through the
   * runner (its prompt interrupted, the job failed when the runner lets go of it); one left by a
   * previous process is failed at once and its prompt taken out of ComfyUI.
   */
  async resetStuck(maxRunningHours: number): Promise<number> {
    const { store, runner, logger } = this.opts;
    let reset = 0;
    for (const job of await store.runningSince(store.now() - maxRunningHours * HOUR_S)) {
      const reason = new WorkerError(
        504,
        'timeout',
        `Job timed out (stuck in running state for more than ${maxRunningHours} h); its prompt was interrupted`,
      );
      if ((await runner.stopJob(job.id, reason)) !== false) reset++;
      else if (store.shared) {
        // Running on another worker (a shared store): its runner interrupts it when this reaches it.
        await store.publish({ type: 'cancel', jobId: job.id, error: reason.toBody() });
        reset++;
      }
    }
    if (reset > 0) logger.warn({ reset, maxRunningHours }, 'failed stuck jobs');
    return reset;
  }

  private async safely(operation: () => Promise<number>): Promise<void> {
    try {
      await operation();
    } catch (err) {
      // A failed pass (disk full, database locked for too long) is retried at the next interval.
      this.opts.logger.error({ err }, 'job database upkeep failed');
    }
  }
}
