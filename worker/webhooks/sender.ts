// Sends final webhooks from the outbox in the background, so delivery never holds up the next
// job. A delivery that fails is retried with exponential backoff and jitter; after the last retry
// it is marked failed (visible in /status and the metrics). It sleeps until the next delivery is
// due (or a job finishes), without polling.
import type { AxiosInstance } from 'axios';
import type { Logger } from '../observability/logger';
import { retryDelayS, type RetryPolicy } from './backoff';
import type { DueDelivery, WebhookOutbox } from './outbox';
import { finalBody, type ContractRenderer, type WebhookJob } from './payload';
import { postWebhook } from './post';

const MAX_IN_FLIGHT = 4;
const COOL_DOWN_MS = 60_000;
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** Where the sender reads the jobs it reports on (the job store), and its clock (epoch s). */
export interface WebhookJobSource<J extends WebhookJob> {
  get(id: string): Promise<J | undefined>;
  now(): number;
}

/** Tells the sender when a job has finished, so a delivery is sent at once. */
export interface FinishedSignal {
  on(event: 'finished', listener: () => void): unknown;
  off(event: 'finished', listener: () => void): unknown;
}

export interface SenderOptions<J extends WebhookJob> {
  outbox: WebhookOutbox;
  store: WebhookJobSource<J>;
  events: FinishedSignal;
  client: AxiosInstance;
  policy: RetryPolicy;
  timeoutS: number;
  /** WEBHOOK_SECRET: signs deliveries whose request brought no secret of its own. */
  envSecret: string | undefined;
  render: ContractRenderer<J>;
  logger: Logger;
  onResult?: (result: 'delivered' | 'retrying' | 'failed') => void;
  /**
   * An outbox shared by several workers: deliveries are armed (and leases run out) without a local
   * `finished` event, so it is read at least this often.
   */
  lookEveryMs?: number;
}

export class WebhookSender<J extends WebhookJob> {
  private readonly opts: SenderOptions<J>;
  private readonly inFlight = new Set<string>();
  /** The attempts in flight, so a stop can let them record their outcome. */
  private readonly attempts = new Set<Promise<void>>();
  /** Stopping: no new attempt starts, those in flight finish. */
  private draining = false;
  /** Deliveries that failed for a reason of ours, and when they may be tried again (ms). */
  private readonly cooling = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private dispatching = false;
  private again = false;
  /** Aborts attempts in flight at stop; they stay pending for the next process. */
  private aborter = new AbortController();
  // After the event's other listeners (a caller waiting for the answer) have had their turn: the
  // outbox's queries are not on the path of the answer.
  private readonly onFinished = () => void setImmediate(() => this.wake());

  constructor(opts: SenderOptions<J>) {
    this.opts = opts;
  }

  /** Starts sending, beginning with what a previous process left pending. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.aborter = new AbortController();
    this.opts.events.on('finished', this.onFinished);
    this.wake();
  }

  /** Stops sending. An attempt in flight is abandoned unrecorded: the next process makes it again. */
  stop(): void {
    this.stopped = true;
    this.aborter.abort();
    this.opts.events.off('finished', this.onFinished);
    clearTimeout(this.timer);
  }

  /**
   * Stops after letting the attempts in flight finish and record their outcome (delivered, or a
   * retry for the next process), for at most `graceMs`; what is still in flight then is abandoned.
   */
  async flush(graceMs: number): Promise<void> {
    if (this.stopped) return;
    this.draining = true;
    clearTimeout(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.allSettled([...this.attempts]), grace]);
    clearTimeout(timer);
    this.draining = false;
    this.stop();
  }

  get pending(): number {
    return this.inFlight.size;
  }

  wake(): void {
    if (this.stopped || this.draining) return;
    // One pass at a time: a wake during a pass runs another pass after it.
    if (this.dispatching) {
      this.again = true;
      return;
    }
    this.dispatching = true;
    this.dispatch()
      .catch((err: unknown) => {
        // The outbox is unusable (database closed or full, Redis away): try again later rather than crash a timer.
        this.opts.logger.error({ err }, 'webhook outbox unavailable; retrying in a minute');
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.wake(), 60_000);
        this.timer.unref();
      })
      .finally(() => {
        this.dispatching = false;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async dispatch(): Promise<void> {
    clearTimeout(this.timer);
    const now = this.opts.store.now();
    const free = MAX_IN_FLIGHT - this.inFlight.size;
    if (free > 0) {
      const nowMs = Date.now();
      for (const [jobId, until] of this.cooling) if (until <= nowMs) this.cooling.delete(jobId);
      const busy = this.inFlight.size + this.cooling.size;
      const due = (await this.opts.outbox.due(now, free + busy)).filter(
        (d) => !this.inFlight.has(d.jobId) && !this.cooling.has(d.jobId),
      );
      for (const delivery of due.slice(0, free)) {
        this.inFlight.add(delivery.jobId);
        const attempt = this.send(delivery)
          .catch((err: unknown) => {
            // Not the receiver's fault (the database, rendering the body): try this one again
            // in a minute rather than at once, which would spin.
            this.opts.logger.error(
              { err, jobId: delivery.jobId },
              'webhook delivery could not be processed; retrying in a minute',
            );
            this.cooling.set(delivery.jobId, Date.now() + COOL_DOWN_MS);
          })
          .finally(() => {
            this.inFlight.delete(delivery.jobId);
            this.attempts.delete(attempt);
            this.wake();
          });
        this.attempts.add(attempt);
      }
    }
    await this.schedule();
  }

  private async schedule(): Promise<void> {
    const next = await this.opts.outbox.nextDueAt();
    if (this.stopped || this.again) return;
    const { lookEveryMs } = this.opts;
    if (next === undefined) {
      // A shared outbox is armed by other workers too: look again now and then.
      if (lookEveryMs !== undefined) {
        this.timer = setTimeout(() => this.wake(), lookEveryMs);
        this.timer.unref();
      }
      return;
    }
    let waitMs = Math.min(Math.max(0, (next - this.opts.store.now()) * 1000), LONGEST_TIMER_MS, lookEveryMs ?? Infinity);
    // Rows that are due but already in flight are rescheduled when their attempt ends.
    if (waitMs === 0 && this.inFlight.size > 0) return;
    // Due rows left waiting are cooling down: wake when the first may go again.
    if (waitMs === 0 && this.cooling.size > 0) waitMs = Math.max(0, Math.min(...this.cooling.values()) - Date.now());
    this.timer = setTimeout(() => this.wake(), waitMs);
    this.timer.unref();
  }

  private async send(delivery: DueDelivery): Promise<void> {
    const { outbox, store, policy, logger } = this.opts;
    const job = await store.get(delivery.jobId);
    if (!job) return;
    if (delivery.secretUnreadable) {
      const reason = 'its target was sealed with another JOB_SECRETS_KEY; not sent';
      await outbox.recordFailure(delivery.jobId, reason, store.now(), undefined);
      logger.error({ jobId: delivery.jobId }, `webhook not delivered: ${reason}`);
      this.opts.onResult?.('failed');
      return;
    }
    const body = await finalBody(job, delivery.extraParams, this.opts.render, store.now());
    const secret = delivery.signed ? (delivery.secret ?? this.opts.envSecret) : undefined;
    const timeoutMs = (delivery.timeoutS ?? this.opts.timeoutS) * 1000;
    const error = await postWebhook(this.opts.client, delivery.url, body, secret, timeoutMs, this.aborter.signal);
    if (this.stopped) return;
    const now = store.now();
    const attempt = delivery.attempts + 1;
    if (error === undefined) {
      await outbox.recordDelivered(delivery.jobId, now);
      logger.info({ jobId: delivery.jobId, attempt }, 'webhook delivered');
      this.opts.onResult?.('delivered');
      return;
    }
    const retriesDone = attempt - 1;
    if (retriesDone < policy.retries) {
      const next = now + retryDelayS(policy, retriesDone + 1);
      await outbox.recordFailure(delivery.jobId, error, now, next);
      logger.warn(
        { jobId: delivery.jobId, attempt, error, retryInS: Math.round((next - now) * 10) / 10 },
        'webhook failed; will retry',
      );
      this.opts.onResult?.('retrying');
    } else {
      await outbox.recordFailure(delivery.jobId, error, now, undefined);
      logger.error({ jobId: delivery.jobId, attempts: attempt, error }, 'webhook delivery failed for good');
      this.opts.onResult?.('failed');
    }
  }
}
