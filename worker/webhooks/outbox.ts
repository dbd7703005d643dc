// The webhook outbox: each job's final delivery, from the moment the job is stored until it is
// delivered or given up on. An interface, so a job store backend brings its own (the SQLite one
// is sqlite-outbox.ts); the sender and the progress notifier only see this.
import type { WebhookTarget } from './types';

export type DeliveryStatus = 'waiting' | 'pending' | 'delivered' | 'failed';

export interface DueDelivery {
  jobId: string;
  url: string;
  extraParams: Record<string, unknown>;
  signed: boolean;
  /** The request's own secret, if it brought one (else WEBHOOK_SECRET applies). */
  secret: string | undefined;
  /** The target was sealed with another JOB_SECRETS_KEY: the delivery cannot be made as asked. */
  secretUnreadable: boolean;
  timeoutS: number | undefined;
  attempts: number;
}

/** What /status and the metrics show of a job's webhook. */
export interface DeliveryState {
  status: DeliveryStatus;
  attempts: number;
  last_error: string | null;
}

export interface WebhookOutbox {
  /** A delivery waiting for its job to end (called when the job is stored). */
  add(jobId: string, target: WebhookTarget, secret: string | undefined, now: number): Promise<void>;
  /** The job ended: its delivery is due now (called in the transaction that ends the job). */
  arm(jobId: string, now: number): Promise<void>;
  /** The job has a delivery not yet made nor given up on. */
  hasUndelivered(jobId: string): Promise<boolean>;
  due(now: number, limit: number): Promise<DueDelivery[]>;
  /** When the next pending delivery is due (epoch seconds), if any. */
  nextDueAt(): Promise<number | undefined>;
  state(jobId: string): Promise<DeliveryState | undefined>;
  /** The target of a job's webhook (for progress events while it runs). */
  target(jobId: string): Promise<DueDelivery | undefined>;
  recordDelivered(jobId: string, now: number): Promise<void>;
  /** Another attempt at `next` (epoch seconds), or the final failure when `next` is undefined. */
  recordFailure(jobId: string, error: string, now: number, next: number | undefined): Promise<void>;
  counts(): Promise<Record<DeliveryStatus, number>>;
}
