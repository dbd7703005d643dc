// The webhook outbox in Redis, beside the jobs of the Redis job store (jobs/redis/): one hash per
// job's delivery, a sorted set of the pending ones by when they are due, and counts by state. The
// job store writes the hash in the script that stores the job and arms it in the script that ends
// it (see armLua), so a delivery is neither lost nor made for a job that did not end. Several
// workers send from one outbox: due() leases what it returns, so each delivery has one sender at a
// time; a sender that dies leaves its lease to run out and another sends it.
import type { Redis } from 'ioredis';
import type { SecretBox } from '../secrets/secret-box';
import type { DeliveryState, DeliveryStatus, DueDelivery, WebhookOutbox } from './outbox';
import type { WebhookTarget } from './types';

/** How long a delivery handed to a sender is not handed to another (longer than any attempt), by default. */
const LEASE_S = 120;

/** The outbox's keys under the store's prefix. */
export const outboxKeys = (prefix: string) => ({
  hook: (jobId: string) => `${prefix}hook:${jobId}`,
  due: `${prefix}hooks:due`,
  counts: `${prefix}hooks:counts`,
});

/**
 * Lua: arm the delivery of job ARGV[1] at ARGV[2] (epoch s) if it waits for its job; KEYS are
 * hook:{id}, hooks:due, hooks:counts. Part of the job store's end-of-job scripts.
 */
export const ARM_LUA = `
local function arm(hookKey, dueKey, countsKey, id, now)
  if redis.call('HGET', hookKey, 'status') == 'waiting' then
    redis.call('HSET', hookKey, 'status', 'pending', 'next', now)
    redis.call('ZADD', dueKey, now, id)
    redis.call('HINCRBY', countsKey, 'waiting', -1)
    redis.call('HINCRBY', countsKey, 'pending', 1)
  end
end
`;

const DUE_LUA = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
`;

// KEYS: hook, due, counts. ARGV: id, now, outcome (delivered|retry|failed), error, next
const RECORD_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[1], 'last_error', ARGV[4], 'next', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'last_error', ARGV[4], 'finished_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'url', 'secret', 'next')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'pending', -1)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return 1
`;

// KEYS: hook, counts. ARGV: field/value pairs of the hash.
const ADD_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('HINCRBY', KEYS[2], 'waiting', 1)
return 1
`;

export class RedisWebhookOutbox implements WebhookOutbox {
  private readonly redis: Redis;
  private readonly box: SecretBox;
  private readonly keys: ReturnType<typeof outboxKeys>;
  private readonly leaseS: number;

  /** @param leaseS JOB_QUEUE_WEBHOOK_LEASE_S: how long a sender has a delivery before another may send it. */
  constructor(redis: Redis, prefix: string, box: SecretBox, leaseS = LEASE_S) {
    this.redis = redis;
    this.box = box;
    this.keys = outboxKeys(prefix);
    this.leaseS = leaseS;
  }

  /** The hash of a new delivery, waiting for its job; the URL and secret sealed (they may carry tokens). */
  fields(target: WebhookTarget, secret: string | undefined, now: number): string[] {
    return [
      'url',
      this.box.seal(target.url).toString('base64'),
      'extra',
      Object.keys(target.extraParams).length > 0 ? JSON.stringify(target.extraParams) : '',
      'signed',
      target.signed ? '1' : '0',
      'secret',
      secret !== undefined ? this.box.seal(secret).toString('base64') : '',
      'timeout_s',
      target.timeoutS !== undefined ? String(target.timeoutS) : '',
      'status',
      'waiting',
      'attempts',
      '0',
      'last_error',
      '',
      'created_at',
      String(now),
    ];
  }

  async add(jobId: string, target: WebhookTarget, secret: string | undefined, now: number): Promise<void> {
    await this.redis.eval(ADD_LUA, 2, this.keys.hook(jobId), this.keys.counts, ...this.fields(target, secret, now));
  }

  async arm(jobId: string, now: number): Promise<void> {
    await this.redis.eval(
      `${ARM_LUA}\narm(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])`,
      3,
      this.keys.hook(jobId),
      this.keys.due,
      this.keys.counts,
      jobId,
      String(now),
    );
  }

  async hasUndelivered(jobId: string): Promise<boolean> {
    const status = await this.redis.hget(this.keys.hook(jobId), 'status');
    return status === 'waiting' || status === 'pending';
  }

  async due(now: number, limit: number): Promise<DueDelivery[]> {
    if (limit <= 0) return [];
    const ids = (await this.redis.eval(
      DUE_LUA,
      1,
      this.keys.due,
      String(now),
      String(limit),
      String(now + this.leaseS),
    )) as string[];
    const found = await Promise.all(ids.map((id) => this.target(id)));
    return found.filter((d): d is DueDelivery => d !== undefined);
  }

  async nextDueAt(): Promise<number | undefined> {
    const first = await this.redis.zrange(this.keys.due, '0', '0', 'WITHSCORES');
    return first.length === 2 ? Number(first[1]) : undefined;
  }

  async state(jobId: string): Promise<DeliveryState | undefined> {
    const [status, attempts, lastError] = await this.redis.hmget(this.keys.hook(jobId), 'status', 'attempts', 'last_error');
    if (!status) return undefined;
    return { status: status as DeliveryStatus, attempts: Number(attempts ?? 0), last_error: lastError || null };
  }

  async target(jobId: string): Promise<DueDelivery | undefined> {
    const row = await this.redis.hgetall(this.keys.hook(jobId));
    if (!row.status) return undefined;
    let url = '';
    let secret: string | undefined;
    let secretUnreadable = false;
    try {
      url = row.url ? this.box.unseal<string>(Buffer.from(row.url, 'base64')) : '';
      secret = row.secret ? this.box.unseal<string>(Buffer.from(row.secret, 'base64')) : undefined;
    } catch {
      secretUnreadable = true;
    }
    return {
      jobId,
      url,
      extraParams: row.extra ? (JSON.parse(row.extra) as Record<string, unknown>) : {},
      signed: row.signed === '1',
      secret,
      secretUnreadable,
      timeoutS: row.timeout_s ? Number(row.timeout_s) : undefined,
      attempts: Number(row.attempts ?? 0),
    };
  }

  async recordDelivered(jobId: string, now: number): Promise<void> {
    await this.record(jobId, now, 'delivered', '', undefined);
  }

  async recordFailure(jobId: string, error: string, now: number, next: number | undefined): Promise<void> {
    await this.record(jobId, now, next === undefined ? 'failed' : 'retry', error, next);
  }

  private async record(jobId: string, now: number, outcome: string, error: string, next: number | undefined): Promise<void> {
    await this.redis.eval(
      RECORD_LUA,
      3,
      this.keys.hook(jobId),
      this.keys.due,
      this.keys.counts,
      jobId,
      String(now),
      outcome,
      error,
      String(next ?? ''),
    );
  }

  async counts(): Promise<Record<DeliveryStatus, number>> {
    const raw = await this.redis.hgetall(this.keys.counts);
    return {
      waiting: Number(raw.waiting ?? 0),
      pending: Number(raw.pending ?? 0),
      delivered: Number(raw.delivered ?? 0),
      failed: Number(raw.failed ?? 0),
    };
  }
}
