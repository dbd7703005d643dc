// Progress webhooks: while a job runs, at most one POST per WEBHOOK_PROGRESS_INTERVAL_S with its
// progress. Sent once, never retried, never awaited by the job: progress is a hint, not a record.
import type { AxiosInstance } from 'axios';
import type { Logger } from '../observability/logger';
import type { DueDelivery, WebhookOutbox } from './outbox';
import { progressBody, type WebhookJob } from './payload';
import { postWebhook } from './post';

const PROGRESS_TIMEOUT_MS = 10_000;

/** The job events progress webhooks follow (the job events emitter provides them). */
export interface ProgressEvents {
  on(event: 'started' | 'finished', listener: (job: WebhookJob) => void): unknown;
  on(event: 'progress', listener: (job: WebhookJob, progress: unknown) => void): unknown;
  off(event: 'started' | 'finished', listener: (job: WebhookJob) => void): unknown;
  off(event: 'progress', listener: (job: WebhookJob, progress: unknown) => void): unknown;
}

export interface ProgressOptions {
  events: ProgressEvents;
  outbox: WebhookOutbox;
  client: AxiosInstance;
  intervalS: number;
  envSecret: string | undefined;
  logger: Logger;
  clock?: () => number;
}

export class ProgressNotifier {
  private readonly opts: ProgressOptions;
  private readonly clock: () => number;
  /** Running jobs with a webhook; undefined while its target is being read. */
  private readonly running = new Map<string, { target: DueDelivery; lastSentMs: number } | undefined>();
  private readonly listeners = {
    started: (job: WebhookJob) => {
      // Marked at once, so a 'finished' that comes before the target is read is not undone by it.
      this.running.set(job.id, undefined);
      // Looked up after this turn: 'started' comes just before the job's /prompt is sent.
      setImmediate(() => this.lookUpTarget(job));
    },
    progress: (job: WebhookJob, progress: unknown) => this.onProgress(job, progress),
    finished: (job: WebhookJob) => {
      this.running.delete(job.id);
    },
  };

  constructor(opts: ProgressOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? Date.now;
  }

  start(): void {
    this.opts.events.on('started', this.listeners.started);
    this.opts.events.on('progress', this.listeners.progress);
    this.opts.events.on('finished', this.listeners.finished);
  }

  stop(): void {
    this.opts.events.off('started', this.listeners.started);
    this.opts.events.off('progress', this.listeners.progress);
    this.opts.events.off('finished', this.listeners.finished);
    this.running.clear();
  }

  private lookUpTarget(job: WebhookJob): void {
    if (!this.running.has(job.id)) return;
    this.opts.outbox.target(job.id).then(
      (target) => {
        if (!this.running.has(job.id)) return;
        if (target && !target.secretUnreadable) this.running.set(job.id, { target, lastSentMs: -Infinity });
        else this.running.delete(job.id);
      },
      (err: unknown) => {
        this.running.delete(job.id);
        this.opts.logger.warn({ err, jobId: job.id }, 'webhook target unreadable; no progress webhooks for this job');
      },
    );
  }

  private onProgress(job: WebhookJob, progress: unknown): void {
    const entry = this.running.get(job.id);
    const now = this.clock();
    if (!entry || now - entry.lastSentMs < this.opts.intervalS * 1000) return;
    entry.lastSentMs = now;
    const { target } = entry;
    const body = progressBody(job, progress, target.extraParams, now / 1000);
    const secret = target.signed ? (target.secret ?? this.opts.envSecret) : undefined;
    void postWebhook(this.opts.client, target.url, body, secret, PROGRESS_TIMEOUT_MS).then((error) => {
      if (error) this.opts.logger.debug({ jobId: job.id, error }, 'progress webhook not delivered (not retried)');
    });
  }
}
