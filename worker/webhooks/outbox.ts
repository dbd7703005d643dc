// The webhook outbox: final deliveries waiting to be sent, kept in the job database so a restart
// resumes them. Rows are created and armed by the job store (see migrations.ts, version 2); this
// module reads the due ones and records each attempt.
import type { Database, Statement } from 'better-sqlite3';
import type { JobStore } from '../jobs/sqlite/store';
import type { SecretBox } from '../secrets/secret-box';

export type DeliveryStatus = 'waiting' | 'pending' | 'delivered' | 'failed';

interface Row {
  job_id: string;
  url: Buffer | null;
  extra: string | null;
  signed: number;
  secret: Buffer | null;
  timeout_s: number | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
}

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

export class WebhookOutbox {
  private readonly box: SecretBox;
  private readonly stmt: Record<'due' | 'next' | 'get' | 'delivered' | 'retry' | 'failed' | 'counts', Statement>;

  constructor(store: JobStore) {
    this.box = store.secretBox;
    const db: Database = store.database;
    this.stmt = {
      due: db.prepare(
        `SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?`,
      ),
      next: db.prepare(`SELECT MIN(next_attempt_at) AS at FROM webhook_deliveries WHERE status = 'pending'`),
      get: db.prepare('SELECT * FROM webhook_deliveries WHERE job_id = ?'),
      delivered: db.prepare(
        `UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_error = NULL,
                url = NULL, secret = NULL, next_attempt_at = NULL, finished_at = @now
         WHERE job_id = @id AND status = 'pending'`,
      ),
      retry: db.prepare(
        `UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = @error, next_attempt_at = @next
         WHERE job_id = @id AND status = 'pending'`,
      ),
      failed: db.prepare(
        `UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, last_error = @error,
                url = NULL, secret = NULL, next_attempt_at = NULL, finished_at = @now
         WHERE job_id = @id AND status = 'pending'`,
      ),
      counts: db.prepare('SELECT status, COUNT(*) AS n FROM webhook_deliveries GROUP BY status'),
    };
  }

  due(now: number, limit: number): DueDelivery[] {
    return (this.stmt.due.all(now, limit) as Row[]).map((row) => this.toDelivery(row));
  }

  /** When the next pending delivery is due (epoch seconds), if any. */
  nextDueAt(): number | undefined {
    return (this.stmt.next.get() as { at: number | null }).at ?? undefined;
  }

  state(jobId: string): DeliveryState | undefined {
    const row = this.stmt.get.get(jobId) as Row | undefined;
    return row && { status: row.status, attempts: row.attempts, last_error: row.last_error };
  }

  /** The target of a job's webhook (for progress events while it runs). */
  target(jobId: string): DueDelivery | undefined {
    const row = this.stmt.get.get(jobId) as Row | undefined;
    return row && this.toDelivery(row);
  }

  private toDelivery(row: Row): DueDelivery {
    let secret: string | undefined;
    let url = '';
    let secretUnreadable = false;
    try {
      url = row.url ? this.box.unseal<string>(row.url) : '';
      secret = row.secret ? this.box.unseal<string>(row.secret) : undefined;
    } catch {
      secretUnreadable = true;
    }
    return {
      jobId: row.job_id,
      url,
      extraParams: row.extra ? (JSON.parse(row.extra) as Record<string, unknown>) : {},
      signed: row.signed === 1,
      secret,
      secretUnreadable,
      timeoutS: row.timeout_s ?? undefined,
      attempts: row.attempts,
    };
  }

  recordDelivered(jobId: string, now: number): void {
    this.stmt.delivered.run({ id: jobId, now });
  }

  /** Another attempt at `next` (epoch seconds), or the final failure when `next` is undefined. */
  recordFailure(jobId: string, error: string, now: number, next: number | undefined): void {
    if (next === undefined) this.stmt.failed.run({ id: jobId, error, now });
    else this.stmt.retry.run({ id: jobId, error, next });
  }

  counts(): Record<DeliveryStatus, number> {
    const counts: Record<DeliveryStatus, number> = { waiting: 0, pending: 0, delivered: 0, failed: 0 };
    for (const row of this.stmt.counts.all() as Array<{ status: DeliveryStatus; n: number }>) counts[row.status] = row.n;
    return counts;
  }
}
