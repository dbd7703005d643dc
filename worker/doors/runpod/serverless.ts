// The serverless job loop, as runpod-python runs it for worker-comfyui (concurrency 1):
//   wait until ComfyUI is ready → long-poll job-take → store the job and let the runner run it →
//   post IN_PROGRESS updates while it runs → post its result to job-done → take the next one.
// Beside it: the heartbeat (a worker thread, see heartbeat.ts) carrying the job in flight, and,
// while a job runs, the job-stop long-poll, which interrupts that job's prompt. Every job taken
// is written to the inbox before it is stored, and leaves it only when RunPod has its answer, so
// a worker that dies mid-job answers for it at its next start: the runner reconciles its prompt
// with ComfyUI by prompt id (never running it twice) and this loop posts the outcome.
import { WORKER_COMFYUI } from '../../contracts';
import { WorkerError, toWorkerError } from '../../errors';
import type { JobProgress, JobRecord } from '../../jobs/types';
import type { Logger } from '../../observability/logger';
import { isObject } from '../../util/objects';
import { sleep } from '../../util/time';
import { parseWorkerComfyInput } from '../../contracts/worker-comfyui/input';
import type { RunpodContext } from './context';
import type { ControlPlane } from './control-plane';
import type { Heartbeat } from './heartbeat';
import type { Inbox } from './inbox';
import { handlerError, handlerOutput, jobDoneBody, type HandlerOutput, type JobDoneBody } from './result';
import type { RunpodUrls } from './urls';

/** RunPod long-polls job-take and job-stop for up to 90 s. */
const LONG_POLL_TIMEOUT_MS = 100_000;
/** A result may carry large base64 outputs. */
const RESULT_TIMEOUT_MS = 120_000;
const PROGRESS_TIMEOUT_MS = 10_000;
/** The SDK's pause after a 429. */
const THROTTLED_PAUSE_MS = 5_000;
/** After an error answer or a network failure, before asking again. */
const ERROR_PAUSE_MS = 1_000;
const READY_POLL_MS = 100;
/** A stopping worker tries its last result at most this often and this long, so the stop fits
 *  in main.ts's 30 s (with RUNPOD_STOP_GRACE_S at most 15 s). */
const STOPPING_RESULT_ATTEMPTS = 2;
const STOPPING_RESULT_TIMEOUT_MS = 5_000;

export interface ServerlessOptions {
  urls: RunpodUrls;
  plane: ControlPlane;
  inbox: Inbox;
  heartbeat: Heartbeat | undefined;
  workerId: string;
  progressIntervalMs: number;
  resultAttempts: number;
  resultBackoffMs: number;
  stopGraceMs: number;
  refreshWorker: boolean;
}

/** A job as job-take hands it out: `{id, input, webhook?, ...}`. */
interface TakenJob {
  id: string;
  input: unknown;
}

/** Why a job is answered without having run to its end. */
const stoppingError = (graceS: number) =>
  new WorkerError(
    503,
    'cancelled',
    `Worker stopping (SIGTERM): the job did not finish within the ${graceS} s grace period, so its prompt was interrupted; submit it again`,
  );
const stoppingBeforeStart = () =>
  new WorkerError(503, 'cancelled', 'Worker stopping (SIGTERM) before the job started; submit it again');
const stoppedByRunpod = () => new WorkerError(499, 'cancelled', "Job stopped at RunPod's request (job-stop)");

/**
 * Sends a job's progress as IN_PROGRESS updates: at most one per interval, one at a time, the
 * latest figure winning (a trailing update carries the state the interval ended on).
 */
class ProgressPoster {
  private latest: JobProgress | undefined;
  private lastSent = 0;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly intervalMs: number,
    private readonly send: (progress: JobProgress) => Promise<void>,
  ) {}

  update(progress: JobProgress): void {
    if (this.closed) return;
    this.latest = progress;
    this.pump();
  }

  private pump(): void {
    if (this.closed || this.inFlight !== undefined || this.timer !== undefined || this.latest === undefined) return;
    const wait = this.lastSent + this.intervalMs - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, wait);
      return;
    }
    const progress = this.latest;
    this.latest = undefined;
    this.lastSent = Date.now();
    this.inFlight = this.send(progress).finally(() => {
      this.inFlight = undefined;
      this.pump();
    });
  }

  /** No more updates; resolves once the one in flight (if any) has been answered. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}

export class ServerlessDoor {
  private readonly ctx: RunpodContext;
  private readonly opts: ServerlessOptions;
  private readonly logger: Logger;
  private readonly stopController = new AbortController();
  private stopping = false;
  private refreshed = false;
  private current: { id: string; done: Promise<void> } | undefined;
  private loopDone: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(ctx: RunpodContext, opts: ServerlessOptions) {
    this.ctx = ctx;
    this.opts = opts;
    this.logger = ctx.logger;
  }

  /** The job being handled, if any (the heartbeat carries it). */
  get inFlight(): string | undefined {
    return this.current?.id;
  }

  start(): void {
    this.opts.heartbeat?.start();
    this.loopDone ??= this.loop().catch((err: unknown) => this.logger.fatal({ err }, 'runpod: job loop ended unexpectedly'));
  }

  private async loop(): Promise<void> {
    let answered = false;
    while (!this.stopping && !this.refreshed) {
      // One failure (a full disk, a bug) must not end the loop while the heartbeat says all is well.
      try {
        if (!answered) await this.answerLeftovers();
        answered = true;
        await this.waitForComfy();
        if (this.stopping) break;
        const jobs = await this.take();
        for (const job of jobs) await this.run(job.id, () => this.handle(job));
      } catch (err) {
        this.logger.error({ err }, 'runpod: job loop failed; continuing');
        await this.pause(ERROR_PAUSE_MS);
      }
    }
    if (this.refreshed) this.logger.info('runpod: REFRESH_WORKER is set: taking no further job (RunPod stops this worker)');
  }

  /** Runs one job's handling as the job in flight. */
  private async run(id: string, handling: () => Promise<void>): Promise<void> {
    this.opts.heartbeat?.setJobs([id]);
    const done = handling().catch((err: unknown) =>
      this.logger.error({ requestId: id, err }, 'runpod: handling a job failed unexpectedly'),
    );
    this.current = { id, done };
    try {
      await done;
    } finally {
      this.current = undefined;
      this.opts.heartbeat?.setJobs([]);
    }
  }

  /**
   * Jobs taken by an earlier process and never answered: their result is posted, once they have
   * ended (the runner first reconciles a prompt left running with ComfyUI). A job that never
   * reached the store cannot be run (only its id was kept) and is answered with an error.
   */
  private async answerLeftovers(): Promise<void> {
    const leftovers = this.opts.inbox.list((file, err) =>
      this.logger.error({ file, err: (err as Error).message }, 'runpod: unreadable entry in the taken-jobs folder'),
    );
    for (const { id } of leftovers) {
      if (this.stopping) return;
      const job = await this.ctx.jobs.get(id);
      this.logger.warn({ requestId: id, status: job?.status ?? 'not stored' }, 'runpod: answering a job taken before a restart');
      await this.run(id, async () => {
        if (job === undefined) {
          const error = new WorkerError(
            502,
            'internal',
            `The worker stopped before job ${id} was stored, so it did not run; submit it again`,
          );
          await this.post(id, handlerError(error.toBody()));
          return;
        }
        await this.follow(id);
      });
    }
  }

  private async waitForComfy(): Promise<void> {
    if (this.ctx.comfy.isReady) return;
    // No job is taken before ComfyUI answers: a job taken now could only wait or fail.
    this.logger.info('runpod: waiting for ComfyUI before taking jobs');
    while (!this.ctx.comfy.isReady && !this.stopping) await this.pause(READY_POLL_MS);
    if (!this.stopping) this.logger.info('runpod: ComfyUI is ready; taking jobs');
  }

  private pause(ms: number): Promise<void> {
    return sleep(ms, this.stopController.signal).catch(() => undefined);
  }

  /** One long-poll of job-take: the jobs it handed out (none on 204/400, errors, throttling). */
  private async take(): Promise<TakenJob[]> {
    let answer;
    try {
      answer = await this.opts.plane.request({
        method: 'GET',
        url: this.opts.urls.take(this.current !== undefined),
        timeoutMs: LONG_POLL_TIMEOUT_MS,
        signal: this.stopController.signal,
      });
    } catch (err) {
      if (this.stopping) return [];
      this.logger.warn({ err: (err as Error).message }, 'runpod: job-take failed; asking again');
      await this.pause(ERROR_PAUSE_MS);
      return [];
    }
    // 204: no job. 400: no job either (what RunPod answers with FlashBoot).
    if (answer.status === 204 || answer.status === 400) return [];
    if (answer.status === 429) {
      this.logger.warn('runpod: job-take throttled (429); backing off');
      await this.pause(THROTTLED_PAUSE_MS);
      return [];
    }
    if (answer.status !== 200) {
      this.logger.error({ status: answer.status }, 'runpod: job-take failed; asking again');
      await this.pause(ERROR_PAUSE_MS);
      return [];
    }
    return this.parseTaken(answer.text);
  }

  private parseTaken(text: string): TakenJob[] {
    if (text.trim() === '') return [];
    let value: unknown;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      this.logger.error('runpod: job-take answered something that is not JSON; no job taken');
      return [];
    }
    const jobs: TakenJob[] = [];
    for (const item of Array.isArray(value) ? value : [value]) {
      const id = isObject(item) && (typeof item.id === 'string' || typeof item.id === 'number') ? String(item.id) : undefined;
      if (id === undefined || id === '') {
        // Without an id the job cannot be answered; RunPod times it out.
        this.logger.error('runpod: Job has missing field(s): id.');
        continue;
      }
      // A missing input is answered ("Please provide input") rather than dropped.
      jobs.push({ id, input: isObject(item) ? item.input : undefined });
    }
    return jobs;
  }

  private async handle(job: TakenJob): Promise<void> {
    const { id } = job;
    try {
      this.opts.inbox.add(id);
    } catch (err) {
      // The job still runs and is answered; only a crash before then would lose it.
      this.logger.error({ requestId: id, err: (err as Error).message }, 'runpod: cannot record the taken job');
    }
    const existing = await this.ctx.jobs.get(id);
    if (existing !== undefined && existing.source !== 'runpod') {
      const error = new WorkerError(409, 'conflict', `Job id ${id} is already used by a job of another door of this worker`);
      await this.post(id, handlerError(error.toBody()));
      return;
    }
    if (existing !== undefined) {
      // Handed out again (RunPod did not get our answer): answered from the store, never rerun.
      this.logger.warn({ requestId: id }, 'runpod: job taken again; answering it without running it twice');
    } else {
      const refused = await this.store(job);
      if (refused !== undefined) {
        await this.post(id, refused);
        return;
      }
      if (this.stopping) await this.cancel(id, stoppingBeforeStart());
    }
    await this.follow(id);
  }

  /** Stores the job for the runner; its answer (worker-comfyui's error) when it is refused. */
  private async store(job: TakenJob): Promise<HandlerOutput | undefined> {
    try {
      // The top-level `webhook` is RunPod's to call, not ours: only the input is parsed.
      const { spec, secrets } = await parseWorkerComfyInput(job.input, this.ctx.contract, 'input');
      await this.ctx.jobs.submit({ id: job.id, source: 'runpod', contract: WORKER_COMFYUI, sync: false, spec, secrets });
      this.logger.info({ requestId: job.id }, 'runpod: job taken');
      return undefined;
    } catch (err) {
      const error = toWorkerError(err);
      if (error.code === 'internal') this.logger.error({ requestId: job.id, err }, 'runpod: storing a job failed');
      else this.logger.warn({ requestId: job.id, code: error.code, msg: error.message }, 'runpod: job refused');
      return handlerError(error.toBody());
    }
  }

  /** Waits for the stored job's end (sending its progress, honouring job-stop) and posts it. */
  private async follow(id: string): Promise<void> {
    const progress = new ProgressPoster(this.opts.progressIntervalMs, (p) => this.postProgress(id, p));
    const onProgress = (job: JobRecord, p: JobProgress) => {
      if (job.id === id) progress.update(p);
    };
    this.ctx.events.on('progress', onProgress);
    const watch = new AbortController();
    const watching = this.watchStop(id, watch.signal);
    let final: JobRecord | undefined;
    try {
      final = await this.ctx.jobs.wait(id);
    } catch (err) {
      this.logger.error({ requestId: id, err: (err as Error).message }, 'runpod: lost track of a job');
    } finally {
      this.ctx.events.off('progress', onProgress);
      watch.abort();
      // No IN_PROGRESS may arrive after the result.
      await progress.close();
      await watching;
    }
    const output =
      final !== undefined
        ? handlerOutput(final, await this.ctx.jobs.inlineData(final))
        : handlerError({ code: 'internal', message: `Job ${id} is no longer in the job store`, status: 500 });
    await this.post(id, output);
  }

  private async postProgress(id: string, progress: JobProgress): Promise<void> {
    try {
      const answer = await this.opts.plane.request({
        method: 'POST',
        url: this.opts.urls.done(id),
        body: JSON.stringify({ status: 'IN_PROGRESS', output: progress }),
        headers: this.postHeaders(id),
        timeoutMs: PROGRESS_TIMEOUT_MS,
      });
      if (answer.status < 200 || answer.status >= 300) {
        this.logger.debug({ requestId: id, status: answer.status }, 'runpod: progress update refused');
      }
    } catch (err) {
      // Progress is best effort: the next update or the result says more.
      this.logger.debug({ requestId: id, err: (err as Error).message }, 'runpod: progress update failed');
    }
  }

  private postHeaders(id: string): Record<string, string> {
    // As the SDK sends them: the body is JSON despite the form content type.
    return { 'Content-Type': 'application/x-www-form-urlencoded', charset: 'utf-8', 'X-Request-ID': id };
  }

  /**
   * Posts the result, retried with backoff. The inbox entry goes once RunPod has it (or refused
   * it for good: a 4xx other than 408/429); a result that could not be delivered stays there and
   * is posted again at the next start.
   */
  private async post(id: string, output: HandlerOutput): Promise<void> {
    const body: JobDoneBody = jobDoneBody(output, this.opts.refreshWorker);
    const text = JSON.stringify(body);
    let lastError = '';
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await this.opts.plane.request({
          method: 'POST',
          url: this.opts.urls.done(id),
          body: text,
          headers: this.postHeaders(id),
          timeoutMs: this.stopping ? STOPPING_RESULT_TIMEOUT_MS : RESULT_TIMEOUT_MS,
        });
        if (answer.status >= 200 && answer.status < 300) {
          this.forget(id);
          this.logger.info({ requestId: id, failed: body.error !== undefined, attempt }, 'runpod: result posted');
          if (body.stopPod) this.refreshed = true;
          return;
        }
        if (answer.status >= 400 && answer.status < 500 && answer.status !== 408 && answer.status !== 429) {
          this.forget(id);
          this.logger.error({ requestId: id, status: answer.status }, 'runpod: job-done refused the result; it is dropped');
          return;
        }
        lastError = `HTTP ${answer.status}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      const attempts = this.stopping ? Math.min(this.opts.resultAttempts, STOPPING_RESULT_ATTEMPTS) : this.opts.resultAttempts;
      if (attempt >= attempts) break;
      const delay = this.opts.resultBackoffMs * 2 ** (attempt - 1);
      this.logger.warn({ requestId: id, attempt, err: lastError }, 'runpod: posting the result failed; retrying');
      await sleep(this.stopping ? Math.min(delay, ERROR_PAUSE_MS) : delay);
    }
    this.logger.error(
      { requestId: id, err: lastError },
      'runpod: the result could not be posted; it is kept and posted again when the worker next starts',
    );
  }

  /** The job is answered: its inbox entry goes (a failure only means a second answer after a restart). */
  private forget(id: string): void {
    try {
      this.opts.inbox.remove(id);
    } catch (err) {
      this.logger.error({ requestId: id, err: (err as Error).message }, 'runpod: cannot remove the answered job from the inbox');
    }
  }

  /** The job-stop long-poll while `id` runs: a stop for it interrupts its prompt. */
  private async watchStop(id: string, signal: AbortSignal): Promise<void> {
    const url = this.opts.urls.stop;
    if (url === undefined) return;
    const wait = (ms: number) => sleep(ms, signal).catch(() => undefined);
    while (!signal.aborted) {
      let answer;
      try {
        answer = await this.opts.plane.request({ method: 'GET', url, timeoutMs: LONG_POLL_TIMEOUT_MS, signal });
      } catch (err) {
        if (signal.aborted) return;
        this.logger.debug({ err: (err as Error).message }, 'runpod: job-stop poll failed');
        await wait(ERROR_PAUSE_MS);
        continue;
      }
      if (answer.status === 204) continue;
      if (answer.status === 429) {
        await wait(THROTTLED_PAUSE_MS);
        continue;
      }
      if (answer.status !== 200) {
        this.logger.debug({ status: answer.status }, 'runpod: job-stop poll refused');
        await wait(ERROR_PAUSE_MS);
        continue;
      }
      let stop: unknown;
      try {
        stop = (JSON.parse(answer.text) as { jobsToStop?: unknown }).jobsToStop;
      } catch {
        stop = undefined;
      }
      if (Array.isArray(stop) && stop.map(String).includes(id)) {
        this.logger.info({ requestId: id }, 'runpod: job-stop: interrupting the job');
        await this.cancel(id, stoppedByRunpod());
      }
    }
  }

  private async cancel(id: string, reason: WorkerError): Promise<void> {
    try {
      await this.ctx.jobs.cancel(id, reason);
    } catch (err) {
      this.logger.debug({ requestId: id, err: (err as Error).message }, 'runpod: nothing to cancel');
    }
  }

  /**
   * SIGTERM: take no new job; give the one in flight the grace period, then interrupt it and post
   * it as failed with the reason; answer it in every case before returning.
   */
  stop(): Promise<void> {
    return (this.stopped ??= (async () => {
      this.stopping = true;
      this.stopController.abort(new Error('stopping'));
      const current = this.current;
      if (current !== undefined) {
        const job = await this.ctx.jobs.get(current.id);
        // The runner takes no job while the worker stops: a pending one cannot start in time.
        if (job?.status === 'pending') await this.cancel(current.id, stoppingBeforeStart());
        else if (job?.status === 'running' && !(await this.endsWithin(current.id, this.opts.stopGraceMs))) {
          this.logger.warn({ requestId: current.id }, 'runpod: stopping: the job did not finish in time; interrupting it');
          await this.cancel(current.id, stoppingError(this.opts.stopGraceMs / 1000));
        }
        await current.done;
      }
      await this.loopDone;
      await this.opts.heartbeat?.stop();
      this.opts.plane.close();
    })());
  }

  private async endsWithin(id: string, ms: number): Promise<boolean> {
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(), ms);
    try {
      await this.ctx.jobs.wait(id, giveUp.signal);
      return true;
    } catch {
      return giveUp.signal.aborted ? false : true;
    } finally {
      clearTimeout(timer);
    }
  }
}
