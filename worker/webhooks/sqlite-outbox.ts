// The webhook outbox in the job database (SQLite): the one module that reads and writes the
// webhook_deliveries table (created by jobs/sqlite/migrations.ts, version 3). The job store calls
// add() when it stores a job and arm() inside the transaction that ends it, so a crash can neither
// lose nor duplicate a delivery.
import type { Database, Statement } from 'better-sqlite3';
import type { SecretBox } from '../secrets/secret-box';
import type { DeliveryState, DeliveryStatus, DueDelivery, WebhookOutbox } from './outbox';
import type { WebhookTarget } from './types';

/** Jobs whose final delivery is still to be made: the store keeps them through cleanup. */
export const UNDELIVERED_JOB_IDS_SQL = `SELECT job_id FROM webhook_deliveries WHERE status IN ('waiting', 'pending')`;

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

export class SqliteWebhookOutbox implements WebhookOutbox {
  private readonly box: SecretBox;
  private readonly stmt: Record<
    'add' | 'arm' | 'undelivered' | 'due' | 'next' | 'get' | 'delivered' | 'retry' | 'failed' | 'counts',
    Statement
  >;

  constructor(db: Database, box: SecretBox) {
    this.box = box;
    this.stmt = {
      add: db.prepare(
        `INSERT INTO webhook_deliveries (job_id, url, extra, signed, secret, timeout_s, status, created_at)
         VALUES (@job_id, @url, @extra, @signed, @secret, @timeout_s, 'waiting', @now)`,
      ),
      arm: db.prepare(
        `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = @now WHERE job_id = @id AND status = 'waiting'`,
      ),
      undelivered: db.prepare(`SELECT 1 FROM webhook_deliveries WHERE job_id = ? AND status IN ('waiting', 'pending')`),
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

  async add(jobId: string, target: WebhookTarget, secret: string | undefined, now: number): Promise<void> {
    this.addNow(jobId, target, secret, now);
  }

  async arm(jobId: string, now: number): Promise<void> {
    this.armNow(jobId, now);
  }

  /** add(), synchronously: the job store calls it inside the transaction that stores the job. */
  addNow(jobId: string, target: WebhookTarget, secret: string | undefined, now: number): void {
    // The URL is sealed too: it may carry a token.
    this.stmt.add.run({
      job_id: jobId,
      url: this.box.seal(target.url),
      extra: Object.keys(target.extraParams).length > 0 ? JSON.stringify(target.extraParams) : null,
      signed: target.signed ? 1 : 0,
      secret: secret !== undefined ? this.box.seal(secret) : null,
      timeout_s: target.timeoutS ?? null,
      now,
    });
  }

  /** arm(), synchronously: the job store calls it inside the transaction that ends the job. */
  armNow(jobId: string, now: number): void {
    this.stmt.arm.run({ id: jobId, now });
  }

  async hasUndelivered(jobId: string): Promise<boolean> {
    return this.stmt.undelivered.get(jobId) !== undefined;
  }

  async due(now: number, limit: number): Promise<DueDelivery[]> {
    return (this.stmt.due.all(now, limit) as Row[]).map((row) => this.toDelivery(row));
  }

  /** When the next pending delivery is due (epoch seconds), if any. */
  async nextDueAt(): Promise<number | undefined> {
    return (this.stmt.next.get() as { at: number | null }).at ?? undefined;
  }

  async state(jobId: string): Promise<DeliveryState | undefined> {
    const row = this.stmt.get.get(jobId) as Row | undefined;
    return row && { status: row.status, attempts: row.attempts, last_error: row.last_error };
  }

  /** The target of a job's webhook (for progress events while it runs). */
  async target(jobId: string): Promise<DueDelivery | undefined> {
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

  async recordDelivered(jobId: string, now: number): Promise<void> {
    this.stmt.delivered.run({ id: jobId, now });
  }

  /** Another attempt at `next` (epoch seconds), or the final failure when `next` is undefined. */
  async recordFailure(jobId: string, error: string, now: number, next: number | undefined): Promise<void> {
    if (next === undefined) this.stmt.failed.run({ id: jobId, error, now });
    else this.stmt.retry.run({ id: jobId, error, next });
  }

  async counts(): Promise<Record<DeliveryStatus, number>> {
    const counts: Record<DeliveryStatus, number> = { waiting: 0, pending: 0, delivered: 0, failed: 0 };
    for (const row of this.stmt.counts.all() as Array<{ status: DeliveryStatus; n: number }>) counts[row.status] = row.n;
    return counts;
  }
}
