// The only thing that starts ComfyUI work: jobs oldest first, each prompt run once. It waits for
// ComfyUI before taking a job, gives each job a deadline, and records every outcome, so one job's
// failure never stops the loop.
//
// ComfyUI runs one prompt at a time; to keep it busy, the runner hands it the next job's prompt
// while the current one executes (ComfyUI's own queue holds it), so the next starts the moment
// the current ends and collecting outputs overlaps the next execution. Up to `queueAhead` of our
// prompts wait in ComfyUI's queue (COMFY_QUEUE_AHEAD), so short jobs never leave it idle while the
// worker submits the next; the next job is taken only once ComfyUI has queued every prompt in
// flight (so prompts reach it in the order jobs were taken). A job's deadline counts from when it
// could start: its `execution_start`, or the moment no job of ours is ahead of it, whichever comes
// first.
import { randomUUID } from 'node:crypto';
import type { ComfyClient } from '../comfy/client';
import type { KeptFile } from '../delivery/types';
import { WorkerError, toWorkerError } from '../errors';
import type { Logger } from '../observability/logger';
import { sleep } from '../util/time';
import type { JobEvents } from './events';
import type { JobExecutor } from './execute';
import { MAX_ATTEMPTS, type Recovery } from './recovery';
import { ProgressTracker } from './progress';
import type { JobStore } from './store';
import type { JobProgress, JobRecord, JobResult } from './types';

/** After an unexpected failure of the loop itself (e.g. the disk is full), pause this long. */
const LOOP_ERROR_PAUSE_MS = 1_000;
/** Prompts of ours waiting in ComfyUI's queue, by default. */
const QUEUE_AHEAD = 1;
/** With a shared store, an idle runner looks at the queue at least this often. */
const SHARED_IDLE_MS = 1_000;

export interface RunnerOptions {
  store: JobStore;
  comfy: ComfyClient;
  execute: JobExecutor;
  events: JobEvents;
  logger: Logger;
  jobTimeoutMs: number;
  /** How many of our prompts may wait in ComfyUI's queue behind the executing one; default 1. */
  queueAhead?: number;
  /** How long queued synchronous callers wait for an unreachable ComfyUI before getting a 503. */
  readyTimeoutMs: number;
  /** Decides what becomes of jobs a previous process left running; without it they are left alone. */
  recovery?: Recovery;
  /** When there are several backends: how this runner defers to the others. */
  siblings?: Siblings;
}

/** What a runner knows of the other backends' runners (see RunnerPool). */
export interface Siblings {
  /** Another backend is ready and has nothing to do: it should take the next job, not us. */
  idleElsewhere(): boolean;
  /** Another backend can run jobs: waiting synchronous callers need not be failed. */
  readyElsewhere(): boolean;
  /** This runner took or ended a job: the others look again. */
  activity(): void;
  /** Whether a job a previous process left running is this runner's to recover. */
  owns(job: JobRecord): boolean;
}

/** Whether a job is being stopped: aborting (it is the running one) or ended (it was a leftover). */
export type StopOutcome = 'aborting' | 'ended' | false;

/** The terminal status a job ends with when it stops for this reason. */
function statusFor(error: WorkerError): 'cancelled' | 'failed' {
  return error.code === 'cancelled' || error.code === 'client_disconnected' ? 'cancelled' : 'failed';
}

interface InFlight {
  job: JobRecord;
  controller: AbortController;
  tracker: ProgressTracker;
  /** ComfyUI answered its /prompt: a next prompt sent now reaches ComfyUI after it. */
  queued: boolean;
  /** ComfyUI reported its prompt's `execution_start`: it no longer waits in ComfyUI's queue. */
  executing: boolean;
  /**
   * Its work starts (once): at `execution_start`, or once nothing of ours is ahead of it. Starts
   * the deadline and tells observers ('started').
   */
  armDeadline(): void;
  done: Promise<void>;
}

export class Runner {
  private readonly opts: RunnerOptions;
  /** Jobs handed to ComfyUI and not yet ended, in the order they were taken. */
  private readonly inFlight = new Map<string, InFlight>();
  /** Interrupted prompts ComfyUI has not let go of yet: no new job is taken meanwhile. */
  private releasing = 0;
  private wakeUp: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private stopping = false;
  private paused = false;
  /** Jobs left running by a previous process are dealt with before the first claim. */
  private recovered = false;
  private readonly stopController = new AbortController();
  /** The last time the runner waited for ComfyUI to come (epoch ms): jobs older report the wait. */
  private comfyWait: { from: number; to: number } | undefined;

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

  /** The oldest job in flight. */
  get runningJobId(): string | undefined {
    return this.inFlight.keys().next().value;
  }

  /** This runner's backend (the ComfyUI base URL). */
  get backend(): string {
    return this.opts.comfy.baseUrl;
  }

  /** Connected to its ComfyUI, no GPU fault, taking jobs, and none in flight. */
  get idleAndReady(): boolean {
    return this.opts.comfy.isReady && this.recovered && !this.paused && !this.stopping && this.inFlight.size === 0;
  }

  get ready(): boolean {
    return this.opts.comfy.isReady;
  }

  /** Every job handed to ComfyUI and not yet ended, oldest first. */
  get runningJobIds(): string[] {
    return [...this.inFlight.keys()];
  }

  progressOf(jobId: string): JobProgress | undefined {
    return this.inFlight.get(jobId)?.tracker.snapshot();
  }

  /** Jobs handed to ComfyUI whose prompt waits in its queue (not executing yet). */
  get waitingJobIds(): string[] {
    return [...this.inFlight.values()].filter((f) => !f.executing && f.job.promptId !== null).map((f) => f.job.id);
  }

  /** Aborts a job this runner runs with this reason; false if it runs no such job. */
  abortRunning(jobId: string, reason: WorkerError): boolean {
    const flight = this.inFlight.get(jobId);
    if (!flight) return false;
    flight.controller.abort(reason);
    return true;
  }

  /**
   * Stops a running job: the one this runner runs is aborted (it ends shortly after, its prompt
   * interrupted); one a previous process left running that recovery has not reached yet (ComfyUI
   * still away) is ended at once and its prompt taken out of ComfyUI if it can be reached.
   */
  async stopJob(jobId: string, reason: WorkerError): Promise<StopOutcome> {
    if (this.abortRunning(jobId, reason)) return 'aborting';
    const { store, comfy } = this.opts;
    const job = await store.get(jobId);
    if (job?.status !== 'running') return false;
    // With a shared store a running job not in flight here runs on another worker (or its lock
    // has not run out yet): the queue sends the cancel there.
    if (store.shared) return false;
    // Another backend's runner has it (its prompt is on that ComfyUI).
    if (this.opts.siblings && !this.opts.siblings.owns(job)) return false;
    if (!(await store.finish(jobId, statusFor(reason), { error: reason.toBody() }))) return false;
    if (job.promptId !== null) void comfy.cancelPrompt(job.promptId);
    await this.emitFinished(jobId);
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
    const flights = [...this.inFlight.values()].map((f) => f.done);
    await Promise.race([Promise.all([this.loopDone ?? Promise.resolve(), ...flights]), grace]);
    clearTimeout(timer);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        const gpuFault = this.opts.comfy.gpuFault;
        if (this.paused) {
          await this.idle();
        } else if (gpuFault !== undefined) {
          // The GPU needs a restart: answer waiting callers now (unless another backend can), keep
          // async jobs for a healthy process (the platform replaces this one; /health says why).
          if (!this.opts.siblings?.readyElsewhere())
            await this.failWaitingSyncJobs(
              new WorkerError(503, 'comfy_unavailable', `GPU fault, the machine needs a restart: ${gpuFault}`),
            );
          await this.idle();
        } else if (!this.opts.comfy.isReady) {
          await this.waitForComfy();
        } else if (!this.recovered) {
          await this.recoverLeftovers();
        } else if (!this.canTakeAnother()) {
          await this.idle();
        } else {
          const promptId = randomUUID();
          const job = await this.opts.store.claimNext(promptId, this.backend);
          if (job && job.promptId !== promptId) {
            // A shared store handed back a job a worker that died left running: reconcile it first.
            await this.recoverOne(job);
          } else if (job) {
            this.opts.events.emit('taken', job);
            this.launch(job);
            this.opts.siblings?.activity();
          } else await this.idle();
        }
      } catch (err) {
        if (this.stopping) break;
        this.opts.logger.error({ err }, 'job loop failed; continuing');
        await sleep(LOOP_ERROR_PAUSE_MS).catch(() => undefined);
      }
    }
  }

  /**
   * Another prompt may join ComfyUI's queue: every prompt in flight is queued there already (order
   * kept), fewer than `queueAhead` of them wait, and at most one more job than those is out (the
   * one executing and one delivering its outputs).
   */
  private canTakeAnother(): boolean {
    const queueAhead = this.opts.queueAhead ?? QUEUE_AHEAD;
    if (this.releasing > 0 || this.inFlight.size >= queueAhead + 2) return false;
    let waiting = 0;
    for (const flight of this.inFlight.values()) {
      if (!flight.queued) return false;
      if (!flight.executing) waiting++;
    }
    if (waiting >= queueAhead) return false;
    // Queue behind our own prompt only when no other backend sits idle.
    return this.inFlight.size === 0 || !this.opts.siblings?.idleElsewhere();
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.opts.store.shared) {
        this.wakeUp = resolve;
        return;
      }
      // A shared queue gets jobs from other workers too, and BullMQ hands back the jobs of workers
      // that died: look again now and then even if no message comes.
      const timer = setTimeout(() => this.wake(), SHARED_IDLE_MS);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Waits for ComfyUI. A caller waiting on its connection waits with its job in the queue for up
   * to COMFY_READY_TIMEOUT_S from its request, then gets a 503; async jobs keep waiting. The wait
   * ends at the earliest such deadline, so each caller gets its answer on time.
   */
  private async waitForComfy(): Promise<void> {
    const { store, readyTimeoutMs, logger } = this.opts;
    const waitFrom = store.now() * 1000;
    const oldest = (await store.pendingSync())[0];
    const timeoutMs = oldest === undefined ? readyTimeoutMs : oldest.createdAt * 1000 + readyTimeoutMs - waitFrom;
    try {
      await this.opts.comfy.waitUntilReady(Math.max(0, timeoutMs), this.stopController.signal);
      this.comfyWait = { from: waitFrom, to: store.now() * 1000 };
    } catch (err) {
      if (this.stopping) return;
      // Another backend can run their jobs: nobody needs failing.
      if (this.opts.siblings?.readyElsewhere()) return;
      const error = toWorkerError(err);
      const now = store.now() * 1000;
      const due = (await store.pendingSync()).filter((job) => job.createdAt * 1000 + readyTimeoutMs <= now + 1);
      if (due.length === 0) return;
      const timeoutS = Math.round(readyTimeoutMs / 100) / 10;
      logger.error(
        { err: error.message, jobIds: due.map((j) => j.id) },
        'ComfyUI unavailable; failing synchronous jobs that waited COMFY_READY_TIMEOUT_S',
      );
      const failure = new WorkerError(
        503,
        'comfy_unavailable',
        `ComfyUI at ${this.opts.comfy.baseUrl} did not become ready within COMFY_READY_TIMEOUT_S (${timeoutS} s) of the request: ${error.message}`,
        { headers: { 'Retry-After': '5' } },
      );
      for (const job of due) {
        if (await store.finish(job.id, 'failed', { error: failure.toBody() })) await this.emitFinished(job.id);
      }
    }
  }

  private async failWaitingSyncJobs(error: WorkerError): Promise<void> {
    // With a shared store, other workers' backends may well run them.
    if (this.opts.store.shared) return;
    for (const job of await this.opts.store.pendingSync()) {
      if (await this.opts.store.finish(job.id, 'failed', { error: error.toBody() })) await this.emitFinished(job.id);
    }
  }

  /**
   * Jobs a previous process left running, oldest first, once ComfyUI is ready and before any new
   * claim: a resumed one occupies the runner like any running job, so nothing else is submitted
   * meanwhile and the order of the queue is kept. If ComfyUI goes away halfway, the loop retries.
   */
  private async recoverLeftovers(): Promise<void> {
    const { recovery, store } = this.opts;
    for (const job of await store.running()) {
      if (!recovery) break;
      if (this.opts.siblings && !this.opts.siblings.owns(job)) continue;
      if (this.stopping || this.paused) return;
      await this.recoverOne(job);
    }
    this.recovered = true;
  }

  /**
   * One job left running by a process that is gone: looked up in ComfyUI by its prompt id, then
   * resumed (watched to its end), requeued (ComfyUI never got it) or failed, never run twice.
   */
  private async recoverOne(job: JobRecord): Promise<void> {
    const { recovery, store, logger } = this.opts;
    if (job.cancelRequested) {
      // Cancelled (or reset as stuck) while its worker was dead: it ends as asked, and its prompt,
      // on this runner's ComfyUI, is interrupted or taken out of its queue.
      const error = job.cancelRequested;
      const status = error.code === 'cancelled' || error.code === 'client_disconnected' ? 'cancelled' : 'failed';
      logger.info({ jobId: job.id, promptId: job.promptId }, `a job left running was ${status} as asked before`);
      if (job.promptId !== null) await this.opts.comfy.cancelPrompt(job.promptId);
      if (await store.finish(job.id, status, { error })) await this.emitFinished(job.id);
      return;
    }
    if (!recovery) {
      await store.putBack(job.id);
      return;
    }
    let plan;
    try {
      plan = await recovery.plan(job);
    } catch (err) {
      // ComfyUI cannot be asked now: the job is looked at again later, as it is.
      await store.putBack(job.id);
      throw err;
    }
    if ((await store.get(job.id))?.status !== 'running') {
      // Cancelled or reset while we looked: make sure ComfyUI drops it too.
      if (plan.kind === 'resume' && job.promptId !== null) await this.opts.comfy.cancelPrompt(job.promptId);
      return;
    }
    logger.info({ jobId: job.id, promptId: job.promptId, plan: plan.kind }, 'recovering a job left running');
    if (plan.kind === 'resume') {
      // One at a time, in order: a second prompt left queued runs in ComfyUI meanwhile anyway.
      await this.launch(job, plan.execute, plan.timeoutMs).done;
    } else if (plan.kind === 'requeue') {
      await store.requeue(job.id);
    } else if (await store.finish(job.id, 'failed', { error: plan.error.toBody() })) {
      await this.emitFinished(job.id);
    }
  }

  /** Hands a claimed job to ComfyUI and follows it to its end in the background. */
  private launch(job: JobRecord, execute: JobExecutor = this.opts.execute, timeoutMs = this.opts.jobTimeoutMs): InFlight {
    const controller = new AbortController();
    const timeoutS = this.opts.jobTimeoutMs / 1000;
    let deadline: NodeJS.Timeout | undefined;
    /** Handed to ComfyUI behind a job of ours: its start is later than its claim. */
    let queuedBehind = false;
    const flight: InFlight = {
      job,
      controller,
      tracker: new ProgressTracker(Object.keys(job.spec.workflow).length),
      // A recovered job's prompt is in ComfyUI already; a new one is once its /prompt is answered.
      queued: execute !== this.opts.execute,
      executing: false,
      armDeadline: () => {
        if (deadline !== undefined || controller.signal.aborted) return;
        if (queuedBehind) {
          // /status, delayTime and recovery's deadline count from when its work started.
          job.startedAt = this.opts.store.now();
          this.opts.store
            .markStarted(job.id, job.startedAt)
            .catch((err: unknown) => this.opts.logger.warn({ err, jobId: job.id }, 'could not record when a job started'));
        }
        // Its work starts now, as observers (the Vast ledger's work_started_at) see it.
        this.opts.events.emit('started', job);
        deadline = setTimeout(
          () =>
            controller.abort(
              new WorkerError(
                504,
                'timeout',
                `Job ${job.id} exceeded its deadline of ${timeoutS} s from its start (JOB_TIMEOUT_S)`,
              ),
            ),
          Math.max(0, timeoutMs),
        );
      },
      done: Promise.resolve(),
    };
    // Nothing of ours is ahead of it: its clock runs from now (its claim).
    if (this.inFlight.size === 0) flight.armDeadline();
    else queuedBehind = true;
    this.inFlight.set(job.id, flight);
    flight.done = this.run(flight, execute)
      .catch((err: unknown) => this.opts.logger.error({ err, jobId: job.id }, 'recording the end of a job failed'))
      .finally(() => clearTimeout(deadline));
    return flight;
  }

  private async run(flight: InFlight, execute: JobExecutor): Promise<void> {
    const { store, events, logger } = this.opts;
    const { job, controller, tracker } = flight;
    /** The final record, built from what the runner holds (the waiting caller needs no read). */
    let final: JobRecord | undefined;
    // Logged once the prompt is on its way: a log line is a write to stdout, off the critical path.
    setImmediate(() =>
      logger.info({ jobId: job.id, promptId: job.promptId, source: job.source, contract: job.contract }, 'job started'),
    );
    /** Logged after the waiting caller has its answer. */
    let completed: { ms: number; outputs: number } | undefined;
    try {
      const secrets = await store.secretsOf(job.id);
      const { result, files } = await execute(
        job,
        secrets,
        controller.signal,
        (event) => {
          if (event.type === 'execution_start' && !flight.executing) {
            flight.queued = true; // its frame may beat the /prompt answer
            flight.executing = true;
            flight.armDeadline();
            this.wake();
          }
          events.emit('comfyEvent', job, event);
          if (tracker.update(event)) events.emit('progress', job, tracker.snapshot());
        },
        () => {
          flight.queued = true;
          this.wake();
        },
      );
      const wait = this.comfyWait;
      const waitedMs = wait === undefined ? 0 : wait.to - Math.max(wait.from, job.createdAt * 1000);
      if (waitedMs > 0) result.timings.comfy_wait_ms = Math.round(waitedMs);
      final = await this.complete(job, result, files);
      completed = { ms: result.timings.total_ms, outputs: result.outputs.length };
    } catch (err) {
      const error = toWorkerError(err);
      if (this.neverRan(flight, error)) {
        // ComfyUI lost the prompt while it waited in its queue (it restarted): nothing ran, so the
        // job goes back to its place in ours and is submitted again, once.
        logger.warn({ jobId: job.id, promptId: job.promptId }, 'ComfyUI lost a queued prompt before it ran; requeued');
        await store.requeue(job.id);
        this.inFlight.delete(job.id);
        this.wake();
        this.opts.siblings?.activity();
        return;
      }
      const status = statusFor(error);
      if (error.code === 'internal') logger.error({ jobId: job.id, err }, 'job failed unexpectedly');
      else logger.warn({ jobId: job.id, code: error.code, status: error.status, msg: error.message }, `job ${status}`);
      const at = store.now();
      if (await store.finish(job.id, status, { error: error.toBody(), at })) {
        final = { ...job, spec: { ...job.spec, images: [] }, status, result: null, error: error.toBody(), completedAt: at };
      }
    } finally {
      this.inFlight.delete(job.id);
      // Nothing of ours is ahead of the oldest job left: it may start now, so its clock runs.
      this.inFlight.values().next().value?.armDeadline();
    }
    await this.emitFinished(job.id, final);
    // The waiting caller's answer is written in a continuation: the log line comes after it.
    if (completed) {
      const line = { jobId: job.id, ...completed };
      setImmediate(() => logger.info(line, 'job completed'));
    }
    // The answer is out; before another job is taken, let an interrupted prompt leave ComfyUI.
    if (controller.signal.aborted && job.promptId !== null) {
      this.releasing++;
      try {
        await this.opts.comfy.waitUntilReleased(job.promptId);
      } finally {
        this.releasing--;
      }
    }
    this.wake();
    this.opts.siblings?.activity();
  }

  /**
   * Records a completed job; its final record, or undefined if it ended otherwise meanwhile. With
   * the local store, when every inline output is in memory, the waiting callers are answered
   * first (`completing`) and the row is written at the end of the same turn of the event loop:
   * the runner resumes here on an I/O callback (a run's last step is network or disk I/O), the
   * answer is written in that callback's microtasks, the row in the check phase right after, and
   * requests that came meanwhile are read only in the next poll phase, so none of them sees the
   * job still running once its caller has the answer. Should the row not be written then, the job
   * is left running (logged): the next start's recovery finds its prompt in /history and
   * completes it (were ComfyUI restarted as well, its history gone, the job would be requeued,
   * like any job caught by both crashes).
   */
  private async complete(job: JobRecord, result: JobResult, files: KeptFile[]): Promise<JobRecord | undefined> {
    const { store, events, logger } = this.opts;
    const at = store.now();
    const done: JobRecord = {
      ...job,
      spec: { ...job.spec, images: [] },
      status: 'completed',
      result,
      error: null,
      completedAt: at,
      // A shared store moves the files away as it records them: only bytes in memory are kept then.
      kept: store.shared ? files.map((file) => (file.bytes ? file : undefined)) : files,
    };
    const record = async () => ((await store.finish(job.id, 'completed', { result, files, at })) ? done : undefined);
    // An answer streaming a file must not race the store deleting it (a failed write, a job ended
    // meanwhile): then the row comes first.
    if (store.shared || files.some((file) => file.bytes === undefined)) return record();
    events.emit('completing', done);
    await new Promise((resolve) => setImmediate(resolve));
    try {
      return await record();
    } catch (err) {
      logger.error(
        { err, jobId: job.id },
        'a completed job whose caller has its answer could not be recorded; left running for recovery',
      );
      return undefined;
    }
  }

  /** The prompt is confirmed gone from ComfyUI and never started executing. */
  private neverRan(flight: InFlight, error: WorkerError): boolean {
    return (
      error.code === 'prompt_lost' && !flight.executing && !flight.controller.signal.aborted && flight.job.attempts < MAX_ATTEMPTS
    );
  }

  private async emitFinished(jobId: string, known?: JobRecord): Promise<void> {
    const final = known ?? (await this.opts.store.get(jobId));
    // Not ended by us and still running: another worker took it over (a shared store).
    if (final && final.status !== 'running' && final.status !== 'pending') this.opts.events.emit('finished', final);
  }
}
