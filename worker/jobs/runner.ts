// The only thing that starts ComfyUI work: one job at a time, oldest first. It waits for ComfyUI
// before taking a job, gives each job a deadline, and records every outcome, so one job's
// failure never stops the loop.
import { randomUUID } from 'node:crypto';
import type { ComfyClient } from '../comfy/client';
import { WorkerError, toWorkerError } from '../errors';
import type { Logger } from '../observability/logger';
import { sleep } from '../util/time';
import type { JobEvents } from './events';
import type { JobExecutor } from './execute';
import type { Recovery } from './recovery';
import { ProgressTracker } from './progress';
import type { JobStore } from './store';
import type { JobProgress, JobRecord } from './types';

/** After an unexpected failure of the loop itself (e.g. the disk is full), pause this long. */
const LOOP_ERROR_PAUSE_MS = 1_000;

export interface RunnerOptions {
  store: JobStore;
  comfy: ComfyClient;
  execute: JobExecutor;
  events: JobEvents;
  logger: Logger;
  jobTimeoutMs: number;
  /** How long queued synchronous callers wait for an unreachable ComfyUI before getting a 503. */
  readyTimeoutMs: number;
  /** Decides what becomes of jobs a previous process left running; without it they are left alone. */
  recovery?: Recovery;
}

/** Whether a job is being stopped: aborting (it is the running one) or ended (it was a leftover). */
export type StopOutcome = 'aborting' | 'ended' | false;

/** The terminal status a job ends with when it stops for this reason. */
function statusFor(error: WorkerError): 'cancelled' | 'failed' {
  return error.code === 'cancelled' || error.code === 'client_disconnected' ? 'cancelled' : 'failed';
}

interface Current {
  job: JobRecord;
  controller: AbortController;
  tracker: ProgressTracker;
}

export class Runner {
  private readonly opts: RunnerOptions;
  private current: Current | undefined;
  private wakeUp: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private stopping = false;
  private paused = false;
  /** Jobs left running by a previous process are dealt with before the first claim. */
  private recovered = false;
  private readonly stopController = new AbortController();

  constructor(opts: RunnerOptions) {
    this.opts = opts;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** New work may be there: take it now rather than at the next natural turn. */
  wake(): void {
    const wake = this.wakeUp;
    this.wakeUp = undefined;
    wake?.();
  }

  /** Stop taking jobs (the current one continues). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }

  get runningJobId(): string | undefined {
    return this.current?.job.id;
  }

  progressOf(jobId: string): JobProgress | undefined {
    return this.current?.job.id === jobId ? this.current.tracker.snapshot() : undefined;
  }

  /** Aborts the running job with this reason; false if it is not the running one. */
  abortRunning(jobId: string, reason: WorkerError): boolean {
    if (this.current?.job.id !== jobId) return false;
    this.current.controller.abort(reason);
    return true;
  }

  /**
   * Stops a running job: the one this runner runs is aborted (it ends shortly after, its prompt
   * interrupted); one a previous process left running that recovery has not reached yet (ComfyUI
   * still away) is ended at once and its prompt taken out of ComfyUI if it can be reached.
   */
  stopJob(jobId: string, reason: WorkerError): StopOutcome {
    if (this.abortRunning(jobId, reason)) return 'aborting';
    const { store, comfy } = this.opts;
    const job = store.get(jobId);
    if (job?.status !== 'running') return false;
    if (!store.finish(jobId, statusFor(reason), { error: reason.toBody() })) return false;
    if (job.promptId !== null) void comfy.cancelPrompt(job.promptId);
    this.emitFinished(jobId);
    return 'ended';
  }

  /**
   * Stops taking jobs. A running job is given `graceMs` to finish; after that it is left as it is
   * in ComfyUI and in the store (not interrupted), for the next process to recover.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.stopController.abort(new WorkerError(503, 'comfy_unavailable', 'worker stopping'));
    this.wake();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.loopDone ?? Promise.resolve(), grace]);
    clearTimeout(timer);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        const gpuFault = this.opts.comfy.gpuFault;
        if (this.paused) {
          await this.idle();
        } else if (gpuFault !== undefined) {
          // The GPU needs a restart: answer waiting callers now, keep async jobs for a healthy
          // process (the platform replaces this one; /health says why).
          this.failWaitingSyncJobs(
            new WorkerError(503, 'comfy_unavailable', `GPU fault, the machine needs a restart: ${gpuFault}`),
          );
          await this.idle();
        } else if (!this.opts.comfy.isReady) {
          await this.waitForComfy();
        } else if (!this.recovered) {
          await this.recoverLeftovers();
        } else {
          const job = this.opts.store.claimNext(randomUUID());
          if (job) await this.run(job);
          else await this.idle();
        }
      } catch (err) {
        if (this.stopping) break;
        this.opts.logger.error({ err }, 'job loop failed; continuing');
        await sleep(LOOP_ERROR_PAUSE_MS).catch(() => undefined);
      }
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
    });
  }

  private async waitForComfy(): Promise<void> {
    try {
      await this.opts.comfy.waitUntilReady(this.opts.readyTimeoutMs, this.stopController.signal);
    } catch (err) {
      if (this.stopping) return;
      // ComfyUI stays away: answer the callers waiting on a connection; async jobs keep waiting.
      const error = toWorkerError(err);
      this.opts.logger.error({ err: error.message }, 'ComfyUI unavailable; failing waiting synchronous jobs');
      this.failWaitingSyncJobs(error);
    }
  }

  private failWaitingSyncJobs(error: WorkerError): void {
    for (const job of this.opts.store.pendingSync()) {
      if (this.opts.store.finish(job.id, 'failed', { error: error.toBody() })) this.emitFinished(job.id);
    }
  }

  /**
   * Jobs a previous process left running, oldest first, once ComfyUI is ready and before any new
   * claim: a resumed one occupies the runner like any running job, so nothing else is submitted
   * meanwhile and the order of the queue is kept. If ComfyUI goes away halfway, the loop retries.
   */
  private async recoverLeftovers(): Promise<void> {
    const { recovery, store, logger } = this.opts;
    for (const job of store.running()) {
      if (!recovery) break;
      if (this.stopping || this.paused) return;
      const plan = await recovery.plan(job);
      if (store.get(job.id)?.status !== 'running') {
        // Cancelled or reset while we looked: make sure ComfyUI drops it too.
        if (plan.kind === 'resume' && job.promptId !== null) await this.opts.comfy.cancelPrompt(job.promptId);
        continue;
      }
      logger.info({ jobId: job.id, promptId: job.promptId, plan: plan.kind }, 'recovering a job left running');
      if (plan.kind === 'resume') {
        await this.run(job, plan.execute, plan.timeoutMs);
      } else if (plan.kind === 'requeue') {
        store.requeue(job.id);
      } else if (store.finish(job.id, 'failed', { error: plan.error.toBody() })) {
        this.emitFinished(job.id);
      }
    }
    this.recovered = true;
  }

  private async run(job: JobRecord, execute: JobExecutor = this.opts.execute, timeoutMs = this.opts.jobTimeoutMs): Promise<void> {
    const { store, events, logger } = this.opts;
    const controller = new AbortController();
    const timeoutS = this.opts.jobTimeoutMs / 1000;
    const deadline = setTimeout(
      () =>
        controller.abort(
          new WorkerError(504, 'timeout', `Job ${job.id} exceeded its deadline of ${timeoutS} s from its start (JOB_TIMEOUT_S)`),
        ),
      Math.max(0, timeoutMs),
    );
    const tracker = new ProgressTracker(Object.keys(job.spec.workflow).length);
    this.current = { job, controller, tracker };
    logger.info({ jobId: job.id, promptId: job.promptId, source: job.source, contract: job.contract }, 'job started');
    try {
      events.emit('started', job);
      const secrets = store.secretsOf(job.id);
      const { result, files } = await execute(job, secrets, controller.signal, (event) => {
        events.emit('comfyEvent', job, event);
        if (tracker.update(event)) events.emit('progress', job, tracker.snapshot());
      });
      store.finish(job.id, 'completed', { result, files });
      logger.info({ jobId: job.id, ms: result.timings.total_ms, outputs: result.outputs.length }, 'job completed');
    } catch (err) {
      const error = toWorkerError(err);
      const status = statusFor(error);
      if (error.code === 'internal') logger.error({ jobId: job.id, err }, 'job failed unexpectedly');
      else logger.warn({ jobId: job.id, code: error.code, status: error.status, msg: error.message }, `job ${status}`);
      store.finish(job.id, status, { error: error.toBody() });
    } finally {
      clearTimeout(deadline);
      this.current = undefined;
    }
    this.emitFinished(job.id);
    // The answer is out; before the next job, let an interrupted prompt leave ComfyUI.
    if (controller.signal.aborted && job.promptId !== null) await this.opts.comfy.waitUntilReleased(job.promptId);
  }

  private emitFinished(jobId: string): void {
    const final = this.opts.store.get(jobId);
    if (final) this.opts.events.emit('finished', final);
  }
}
