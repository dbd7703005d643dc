// The job store on Redis, for a queue shared by workers on several machines (JOB_QUEUE_URL). The
// order of the queue, the claim of a job, its lock while it runs and the handling of a worker that
// died with it are BullMQ's (queue QUEUE_NAME); what the job API reads (status, spec, prompt id,
// backend, result, sealed credentials) is one hash per job under KEY_PREFIX, changed by Lua
// scripts so each transition is atomic: stored + webhook added, claimed, ended + webhook armed.
//
// Bytes are not kept on a worker's disk, which other machines cannot read: input images are kept
// in the job's hash until it ends, inline outputs in a hash of their own until the job expires,
// both within JOB_QUEUE_INLINE_MAX_BYTES (above it a job is refused or fails, naming S3).
//
// Claiming: a runner takes the next BullMQ job with its new prompt id as lock token, then marks
// the hash running. A job whose hash says running was left by a worker that died (BullMQ found its
// lock expired and put it back). If its prompt was never sent to ComfyUI (`sent` is recorded just
// before POST /prompt), no ComfyUI has it and it simply runs again, here. Otherwise only a worker
// with its backend ("<node> <url>") can tell whether it ran: that worker gets it with its old
// prompt id to reconcile; others put it back for JOB_QUEUE_TAKEOVER_S so that worker can come
// back, then fail it (`worker_lost`) rather than resubmit a prompt that may have run.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { Queue, Worker, type Job } from 'bullmq';
import type { InputImage } from '../../comfy/inputs';
import type { KeptFile, OutputSink } from '../../delivery/types';
import { WorkerError, type ErrorBody } from '../../errors';
import type { Logger } from '../../observability/logger';
import type { SecretBox } from '../../secrets/secret-box';
import { ARM_LUA, RedisWebhookOutbox, outboxKeys } from '../../webhooks/redis-outbox';
import { JobFiles } from '../files';
import type { JobStore, RecentJob, StatusCounts, StoreMessage, StoredFile } from '../store';
import {
  pendingRecord,
  type JobProgress,
  type JobRecord,
  type JobResult,
  type JobSecrets,
  type JobSpec,
  type JobStatus,
  type NewJob,
} from '../types';

/** The BullMQ queue (prefix `bull`, BullMQ's default): what a dashboard is pointed at. */
export const QUEUE_NAME = 'comfyui-jobs';
/** The job hashes, indexes and webhook outbox. */
export const KEY_PREFIX = 'comfyui-worker:';
// Not a multiple of the runners' idle look (1 s), so the runner that handed it back is not the first to see it again.
const LEFTOVER_RETRY_MS = 2_500;
/** Progress kept after the last update (a job that stops reporting it is not running anymore). */
const PROGRESS_TTL_S = 3600;
/**
 * A pending job older than this with no BullMQ job was stored while Redis failed before its
 * BullMQ job was added (a submission is two steps): repair() fails it.
 */
const INTERRUPTED_SUBMISSION_S = 60;
/** Pending jobs read per round trip by repair(). */
const REPAIR_BATCH = 500;

export interface RedisStoreOptions {
  /** JOB_QUEUE_URL (redis:// or rediss://; never logged). */
  url: string;
  /** How it is shown in /health and logs: the URL without its password. */
  shownAs: string;
  /**
   * This machine (WORKER_NODE_ID): a job records its backend as "<node> <url>", since one URL
   * (127.0.0.1:8188) names a different ComfyUI on every machine. Default: none (the URL alone).
   */
  nodeId?: string;
  secrets: SecretBox;
  /** A local scratch folder: outputs are written there, then moved into Redis when the job ends. */
  filesPath: string;
  /** JOB_QUEUE_LOCK_S in ms: a worker that stops renewing a job's lock this long has died. */
  lockMs: number;
  /** JOB_QUEUE_INLINE_MAX_BYTES: input images and inline outputs kept in Redis per job. */
  inlineMaxBytes: number;
  /** JOB_QUEUE_WEBHOOK_LEASE_S: a delivery handed to a sender is not handed to another this long. */
  webhookLeaseS?: number;
  /**
   * JOB_QUEUE_TAKEOVER_S in ms: a job a dead worker left after sending its prompt waits this long
   * for a worker with its backend, then is failed by any other.
   */
  takeoverMs: number;
  logger: Logger;
  clock?: () => number;
}

const k = {
  job: (id: string) => `${KEY_PREFIX}job:${id}`,
  out: (id: string) => `${KEY_PREFIX}out:${id}`,
  progress: (id: string) => `${KEY_PREFIX}progress:${id}`,
  seq: `${KEY_PREFIX}seq`,
  all: `${KEY_PREFIX}all`,
  pending: `${KEY_PREFIX}pending`,
  pendingSync: `${KEY_PREFIX}pending-sync`,
  running: `${KEY_PREFIX}running`,
  ended: `${KEY_PREFIX}ended`,
  counts: `${KEY_PREFIX}counts`,
  channel: `${KEY_PREFIX}events`,
  /** Set while the process with this id is alive (a synchronous job's caller waits on it). */
  alive: (instance: string) => `${KEY_PREFIX}alive:${instance}`,
};
const hooks = outboxKeys(KEY_PREFIX);

// KEYS: job, all, pending, pendingSync, counts, seq, hook, hookCounts, alive (of this process)
// ARGV: id, sync, n, n job fields/values..., m, m hook fields/values..., alive ttl (ms)
const INSERT_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local seq = redis.call('INCR', KEYS[6])
local n = tonumber(ARGV[3])
local fields = {}
for i = 1, n do fields[i] = ARGV[3 + i] end
redis.call('HSET', KEYS[1], 'seq', seq, 'status', 'pending', 'attempts', 0, unpack(fields))
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
if ARGV[2] == '1' then redis.call('ZADD', KEYS[4], seq, ARGV[1]) end
redis.call('HINCRBY', KEYS[5], 'pending', 1)
local m = tonumber(ARGV[4 + n])
if m > 0 then
  local hook = {}
  for i = 1, m do hook[i] = ARGV[4 + n + i] end
  redis.call('DEL', KEYS[7])
  redis.call('HSET', KEYS[7], unpack(hook))
  redis.call('HINCRBY', KEYS[8], 'waiting', 1)
end
if ARGV[2] == '1' then redis.call('SET', KEYS[9], '1', 'PX', ARGV[5 + n + m]) end
return seq
`;

// KEYS: job, pending, pendingSync, running, counts. ARGV: id, promptId, backend, now, alive key prefix
const CLAIM_LUA = `
local st = redis.call('HGET', KEYS[1], 'status')
local function orphaned()
  local caller = redis.call('HGET', KEYS[1], 'caller')
  return caller and caller ~= '' and redis.call('EXISTS', ARGV[5] .. caller) == 0
end
if st == 'pending' then
  if orphaned() then return 'orphaned' end
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[4], 'prompt_id', ARGV[2], 'backend', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  redis.call('HINCRBY', KEYS[5], 'pending', -1)
  redis.call('HINCRBY', KEYS[5], 'running', 1)
  return 'claimed'
end
if st == 'running' then
  if redis.call('HEXISTS', KEYS[1], 'sent') == 0 and redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 0 then
    -- Left before its prompt was sent: no ComfyUI has it, so it runs again, here (the same attempt).
    if orphaned() then return 'orphaned' end
    redis.call('HSET', KEYS[1], 'prompt_id', ARGV[2], 'backend', ARGV[3], 'started_at', ARGV[4])
    redis.call('HDEL', KEYS[1], 'left_at')
    redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
    return 'retaken'
  end
  if redis.call('HEXISTS', KEYS[1], 'left_at') == 0 then redis.call('HSET', KEYS[1], 'left_at', ARGV[4]) end
  return 'leftover'
end
return st or 'gone'
`;

// KEYS: job, pending, pendingSync, running, ended, counts, hook, due, hookCounts
// ARGV: id, status, now, result, error, 'any' (pending or running) | 'pending', 'quiet' (its
// webhook is dropped, not armed: the client was told the job was not accepted), the prompt id the
// ender ran it with ('' for any: a worker whose job was taken over does not end the new run)
const END_LUA = `${ARM_LUA}
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'pending' and (st ~= 'running' or ARGV[6] ~= 'any') then return 0 end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[1], 'prompt_id') ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'completed_at', ARGV[3], 'result', ARGV[4], 'error', ARGV[5])
redis.call('HDEL', KEYS[1], 'secrets', 'inputs', 'left_at', 'cancel_requested')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[6], st, -1)
redis.call('HINCRBY', KEYS[6], ARGV[2], 1)
if ARGV[7] == 'quiet' then
  if redis.call('HGET', KEYS[7], 'status') == 'waiting' then
    redis.call('DEL', KEYS[7])
    redis.call('HINCRBY', KEYS[9], 'waiting', -1)
  end
else
  arm(KEYS[7], KEYS[8], KEYS[9], ARGV[1], ARGV[3])
end
return 1
`;

// KEYS: job, pending, pendingSync, running, counts. ARGV: id
const REQUEUE_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
local seq = redis.call('HGET', KEYS[1], 'seq')
redis.call('HSET', KEYS[1], 'status', 'pending')
redis.call('HDEL', KEYS[1], 'started_at', 'prompt_id', 'backend', 'left_at', 'cancel_requested', 'sent')
redis.call('ZADD', KEYS[2], seq, ARGV[1])
if redis.call('HGET', KEYS[1], 'sync') == '1' then redis.call('ZADD', KEYS[3], seq, ARGV[1]) end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'running', -1)
redis.call('HINCRBY', KEYS[5], 'pending', 1)
return 1
`;

// KEYS: job. ARGV: the prompt id. Just before POST /prompt: from now on the prompt may run in
// ComfyUI. Refused (0) if the job ended or was taken over (another prompt id) meanwhile.
const PROMPT_SENT_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('HGET', KEYS[1], 'prompt_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sent', '1')
return 1
`;

// KEYS: job. ARGV: the error (JSON). A cancel of a running job sticks to it: whoever takes the job
// over from a worker that died ends it instead of running it.
const CANCEL_FLAG_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[1])
return 1
`;

// KEYS: job, all, ended, counts, out, progress, hook, due, hookCounts. ARGV: id, keep-undelivered (1|0)
const DELETE_LUA = `
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled' then return 0 end
local hs = redis.call('HGET', KEYS[7], 'status')
if ARGV[2] == '1' and (hs == 'waiting' or hs == 'pending') then return 0 end
redis.call('DEL', KEYS[1], KEYS[5], KEYS[6], KEYS[7])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[8], ARGV[1])
redis.call('HINCRBY', KEYS[4], st, -1)
if hs then redis.call('HINCRBY', KEYS[9], hs, -1) end
return 1
`;

/** An input image as the job's hash keeps it: URLs and base64 text as they came, files as base64. */
type StoredInput = { name: string; image: string };

/** A job this process took from BullMQ: the lock it renews, with its token. */
interface Held {
  bull: Job;
  token: string;
  seq: number;
  /** The prompt id it runs with (a job taken over keeps its old one). */
  promptId: string | null;
}

/** Redis and BullMQ errors become a 503 the caller can retry; the URL is never in them. */
function unavailable(err: unknown): WorkerError {
  if (err instanceof WorkerError) return err;
  return new WorkerError(503, 'store_unavailable', `The job queue (Redis) cannot be reached: ${(err as Error).message}`, {
    headers: { 'Retry-After': '5' },
    cause: err,
  });
}

function toRecord(id: string, row: Record<string, string>): JobRecord {
  const spec = JSON.parse(row.spec ?? '{}') as JobSpec;
  spec.images = row.inputs ? (JSON.parse(row.inputs) as StoredInput[]) : [];
  const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
  return {
    id,
    seq: Number(row.seq),
    source: row.source ?? '',
    contract: row.contract ?? '',
    sync: row.sync === '1',
    status: row.status as JobStatus,
    spec,
    promptId: row.prompt_id || null,
    backend: row.backend || null,
    attempts: Number(row.attempts ?? 0),
    result: row.result ? (JSON.parse(row.result) as JobResult) : null,
    error: row.error ? (JSON.parse(row.error) as ErrorBody) : null,
    createdAt: Number(row.created_at),
    startedAt: num(row.started_at),
    completedAt: num(row.completed_at),
    ...(row.cancel_requested ? { cancelRequested: JSON.parse(row.cancel_requested) as ErrorBody } : {}),
  };
}

/** The terminal status of a job stopped with this error. */
const stoppedAs = (error: ErrorBody) =>
  error.code === 'cancelled' || error.code === 'client_disconnected' ? 'cancelled' : 'failed';

/** A synchronous job whose caller's worker is gone: nobody waits for its answer. */
const ORPHANED: ErrorBody = {
  code: 'client_disconnected',
  status: 499,
  message:
    'Cancelled before it ran: the worker that accepted this synchronous job stopped or died, and the caller waiting for it is gone with it; submit it again',
};

/** A job whose worker died after sending its prompt, and no worker with that backend came back. */
function workerLost(backend: string | null, takeoverMs: number): ErrorBody {
  return {
    code: 'worker_lost',
    status: 502,
    message:
      `The worker running this job stopped (it died or lost its machine) after sending its prompt to ComfyUI ${backend ?? '(unknown)'}, ` +
      `and no worker with that ComfyUI took the job back within JOB_QUEUE_TAKEOVER_S (${takeoverMs / 1000} s). ` +
      'The prompt may have run there, so it was not resubmitted (that could run it twice); submit the job again if you need it',
  };
}

/** A job stored while Redis failed before its BullMQ job was added. */
const INTERRUPTED: ErrorBody = {
  code: 'store_unavailable',
  status: 503,
  message:
    'Its submission was interrupted (the job queue, Redis, failed between storing the job and queueing it), so it was never queued; submit it again',
};

export class RedisJobStore implements JobStore {
  readonly shared = true;
  readonly webhooks: RedisWebhookOutbox;
  readonly files: JobFiles;
  private readonly opts: RedisStoreOptions;
  private readonly clock: () => number;
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly queue: Queue;
  private worker: Worker | undefined;
  private workerConnection: Redis | undefined;
  private readonly held = new Map<string, Held>();
  /** The backends this process's runners claim for. */
  private readonly backends = new Set<string>();
  private readonly listeners: Array<(message: StoreMessage) => void> = [];
  private lockTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** This process: synchronous jobs accepted here record it, and it is kept alive in Redis. */
  private readonly instance = randomUUID();
  private aliveTimer: NodeJS.Timeout | undefined;

  constructor(opts: RedisStoreOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? Date.now;
    // Commands wait for one reconnection at most, then fail (a 503): callers are not held while
    // Redis is away. The error event is logged without the URL.
    const options: RedisOptions = {
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      connectTimeout: 5_000,
    };
    this.redis = new Redis(opts.url, options);
    this.subscriber = new Redis(opts.url, { ...options, maxRetriesPerRequest: null });
    let warned = false;
    for (const client of [this.redis, this.subscriber]) {
      client.on('error', (err: Error) => {
        if (warned || this.closed) return;
        warned = true;
        opts.logger.warn({ queue: opts.shownAs, err: err.message }, 'job queue (Redis) connection error; reconnecting');
      });
      client.on('ready', () => {
        if (warned) opts.logger.info({ queue: opts.shownAs }, 'job queue (Redis) connection back');
        warned = false;
      });
    }
    this.subscriber.subscribe(k.channel).catch(() => undefined);
    this.subscriber.on('message', (_channel: string, text: string) => {
      let message: StoreMessage;
      try {
        message = JSON.parse(text) as StoreMessage;
      } catch {
        return;
      }
      if (message.type === 'leftover') {
        // A job left running on one of our backends comes due again: our runners look right then.
        if (!this.backends.has(message.backend)) return;
        const wake = setTimeout(() => this.tell({ type: 'queued', jobId: message.jobId }), Math.max(0, message.due - Date.now()));
        wake.unref();
        return;
      }
      this.tell(message);
    });
    this.queue = new Queue(QUEUE_NAME, {
      connection: this.redis,
      defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
    });
    this.queue.on('error', () => undefined); // reported by the client's own error event
    this.webhooks = new RedisWebhookOutbox(this.redis, KEY_PREFIX, opts.secrets, opts.webhookLeaseS);
    this.files = new JobFiles(opts.filesPath);
    // While this process lives, its synchronous jobs' callers may be waiting here: the key says so
    // (set again with every synchronous job stored). Gone, a runner cancels those jobs rather than run them.
    this.aliveTimer = setInterval(() => void this.keepAlive(), Math.max(500, Math.round(this.opts.lockMs / 3)));
    this.aliveTimer.unref();
  }

  /** How long this process's alive key outlives its last renewal. */
  private get aliveTtlMs(): number {
    return 3 * this.opts.lockMs;
  }

  private async keepAlive(): Promise<void> {
    await this.redis.set(k.alive(this.instance), '1', 'PX', this.aliveTtlMs).catch(() => undefined);
  }

  describe(): { backend: string; path: string } {
    return { backend: 'redis', path: this.opts.shownAs };
  }

  now(): number {
    return this.clock() / 1000;
  }

  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      throw unavailable(err);
    }
  }

  async insert(job: NewJob): Promise<JobRecord> {
    const { images, webhook, ...spec } = job.spec;
    const { webhookSecret, ...jobSecrets } = job.secrets ?? {};
    const hasSecrets = Object.values(jobSecrets).some((v) => v !== undefined);
    const inputs = await this.inlineInputs(images);
    const createdAt = this.now();
    const fields = [
      'source',
      job.source,
      'contract',
      job.contract,
      'sync',
      job.sync ? '1' : '0',
      'created_at',
      String(createdAt),
      'spec',
      JSON.stringify(spec),
      'inputs',
      inputs.length > 0 ? JSON.stringify(inputs) : '',
      'secrets',
      hasSecrets ? this.opts.secrets.seal(jobSecrets).toString('base64') : '',
      // The process whose caller waits for a synchronous job: if it dies, nobody does.
      'caller',
      job.sync ? this.instance : '',
    ];
    const hook = webhook ? this.webhooks.fields(webhook, webhookSecret, createdAt) : [];
    const seq = await this.guard(async () => {
      const stored = Number(
        await this.redis.eval(
          INSERT_LUA,
          9,
          k.job(job.id),
          k.all,
          k.pending,
          k.pendingSync,
          k.counts,
          k.seq,
          hooks.hook(job.id),
          hooks.counts,
          k.alive(this.instance),
          job.id,
          job.sync ? '1' : '0',
          String(fields.length),
          ...fields,
          String(hook.length),
          ...hook,
          String(this.aliveTtlMs),
        ),
      );
      if (stored < 0) return stored;
      // The BullMQ job: what a dashboard shows, and what runners take in order. No secrets in it.
      const nodes = Object.keys(spec.workflow).length;
      try {
        await this.queue.add(
          job.contract,
          { id: job.id, source: job.source, contract: job.contract, sync: job.sync, nodes, created_at: createdAt },
          { jobId: job.id },
        );
      } catch (err) {
        // Stored but not queued: no runner would ever take it. The client gets a 503, so the record
        // ends now as failed, quietly (no webhook); if Redis is away for this too, repair() ends it later.
        await this.end(job.id, 'failed', { error: INTERRUPTED, mode: 'pending', quiet: true }).catch(() => undefined);
        throw err;
      }
      return stored;
    });
    if (seq < 0) throw new WorkerError(409, 'conflict', `A job with id ${job.id} already exists`, { field: 'request_id' });
    // Idle runners on every worker look at the queue now rather than at their next turn.
    await this.publish({ type: 'queued', jobId: job.id }).catch(() => undefined);
    return pendingRecord(job, seq, createdAt, inputs);
  }

  /** Spooled images are read into base64 text (the runner may be on another machine). */
  private async inlineInputs(images: InputImage[]): Promise<StoredInput[]> {
    let total = 0;
    const inputs: StoredInput[] = [];
    for (const { name, image } of images) {
      if (typeof image === 'string') {
        total += image.length;
        inputs.push({ name, image });
      } else {
        total += image.size;
        if (total > this.opts.inlineMaxBytes) break;
        inputs.push({ name, image: (await fs.promises.readFile(image.path)).toString('base64') });
      }
    }
    if (total > this.opts.inlineMaxBytes) {
      throw new WorkerError(
        413,
        'payload_too_large',
        `The input images (${total} bytes) exceed JOB_QUEUE_INLINE_MAX_BYTES (${this.opts.inlineMaxBytes}) of the shared job queue; pass them as URLs`,
        { field: 'images' },
      );
    }
    return inputs;
  }

  /** Runs END_LUA: ends the job if it is pending (or running, mode 'any'); true if it did. */
  private async end(
    id: string,
    status: Exclude<JobStatus, 'pending' | 'running'>,
    how: {
      error?: ErrorBody;
      result?: JobResult;
      at?: number;
      mode: 'any' | 'pending';
      quiet?: boolean;
      promptId?: string | null;
    },
  ): Promise<boolean> {
    const changed = await this.redis.eval(
      END_LUA,
      9,
      k.job(id),
      k.pending,
      k.pendingSync,
      k.running,
      k.ended,
      k.counts,
      hooks.hook(id),
      hooks.due,
      hooks.counts,
      id,
      status,
      String(how.at ?? this.now()),
      how.result ? JSON.stringify(how.result) : '',
      how.error ? JSON.stringify(how.error) : '',
      how.mode,
      how.quiet ? 'quiet' : '',
      how.promptId ?? '',
    );
    return Number(changed) === 1;
  }

  /**
   * Ends what no runner would end well: pending jobs older than INTERRUPTED_SUBMISSION_S that have
   * no BullMQ job (Redis failed between the two steps of their submission), failed; pending
   * synchronous jobs whose caller's worker is gone, cancelled. Returns how many.
   */
  async repair(): Promise<number> {
    return this.guard(async () => {
      let repaired = 0;
      const cutoff = this.now() - INTERRUPTED_SUBMISSION_S;
      for (let from = 0; ; from += REPAIR_BATCH) {
        const ids = await this.redis.zrange(k.pending, String(from), String(from + REPAIR_BATCH - 1));
        if (ids.length === 0) break;
        const pipeline = this.redis.pipeline();
        for (const id of ids) pipeline.hget(k.job(id), 'created_at').exists(this.queue.toKey(id));
        const replies = (await pipeline.exec()) ?? [];
        let young = false;
        for (const [i, id] of ids.entries()) {
          const created = Number(replies[2 * i]?.[1] ?? NaN);
          const queued = Number(replies[2 * i + 1]?.[1] ?? 1) === 1;
          if (!(created < cutoff)) {
            young = true;
            continue;
          }
          if (queued) continue;
          if (await this.end(id, 'failed', { error: INTERRUPTED, mode: 'pending' })) {
            this.opts.logger.warn({ jobId: id }, 'failed a job whose submission was interrupted (never queued)');
            await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
            repaired++;
          }
        }
        // Pending jobs are in the order they were stored: past the first young ones, all are young.
        if (young || ids.length < REPAIR_BATCH) break;
      }
      for (const id of await this.redis.zrange(k.pendingSync, '0', '-1')) {
        const caller = await this.redis.hget(k.job(id), 'caller');
        if (!caller || (await this.redis.exists(k.alive(caller))) === 1) continue;
        if (await this.end(id, 'cancelled', { error: ORPHANED, mode: 'pending' })) {
          await this.queue.remove(id).catch(() => undefined);
          this.opts.logger.warn({ jobId: id }, 'cancelled a synchronous job whose caller left with its worker');
          await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
          repaired++;
        }
      }
      return repaired;
    });
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = await this.guard(() => this.redis.hgetall(k.job(id)));
    return row.status ? toRecord(id, row) : undefined;
  }

  async secretsOf(id: string): Promise<JobSecrets> {
    const sealed = await this.guard(() => this.redis.hget(k.job(id), 'secrets'));
    if (!sealed) return {};
    try {
      return this.opts.secrets.unseal<JobSecrets>(Buffer.from(sealed, 'base64'));
    } catch {
      throw new WorkerError(
        500,
        'internal',
        `The credentials of job ${id} cannot be decrypted: they were sealed with another JOB_SECRETS_KEY (or key file)`,
      );
    }
  }

  /** BullMQ's worker, made by the first claim (an api-only worker never claims, so never has one). */
  private bullWorker(): Worker {
    if (this.worker) return this.worker;
    this.workerConnection = new Redis(this.opts.url, { maxRetriesPerRequest: null });
    this.workerConnection.on('error', () => undefined); // reported by the client's own error event
    const worker = new Worker(QUEUE_NAME, null, {
      connection: this.workerConnection,
      autorun: false,
      lockDuration: this.opts.lockMs,
      stalledInterval: Math.max(1_000, Math.round(this.opts.lockMs / 2)),
      // Stalling is a worker dying, not the job failing: the job is always taken again.
      maxStalledCount: 1_000_000,
    });
    worker.on('error', () => undefined); // reported by the client's own error event
    void worker.startStalledCheckTimer().catch(() => undefined);
    this.worker = worker;
    this.lockTimer = setInterval(() => void this.renewLocks(), Math.max(500, Math.round(this.opts.lockMs / 3)));
    this.lockTimer.unref();
    return worker;
  }

  private async renewLocks(): Promise<void> {
    for (const [id, held] of this.held) {
      try {
        await held.bull.extendLock(held.token, this.opts.lockMs);
      } catch (err) {
        this.opts.logger.warn({ jobId: id, err: (err as Error).message }, 'could not renew the lock of a running job');
      }
    }
  }

  async claimNext(promptId: string, backend?: string): Promise<JobRecord | undefined> {
    if (this.closed) return undefined;
    const where = backend === undefined ? undefined : this.opts.nodeId ? `${this.opts.nodeId} ${backend}` : backend;
    if (where !== undefined) this.backends.add(where);
    const worker = this.bullWorker();
    return this.guard(async () => {
      for (;;) {
        const bull = (await worker.getNextJob(promptId, { block: false })) as Job | undefined;
        if (!bull?.id) return undefined;
        const id = bull.id;
        const now = this.now();
        const outcome = (await this.redis.eval(
          CLAIM_LUA,
          5,
          k.job(id),
          k.pending,
          k.pendingSync,
          k.running,
          k.counts,
          id,
          promptId,
          where ?? '',
          String(now),
          k.alive(''),
        )) as string;
        if (outcome === 'orphaned') {
          // A synchronous job whose caller's worker is gone: nobody would read its answer. (Pending,
          // or left running before its prompt was sent; we hold its BullMQ job either way.)
          if (await this.end(id, 'cancelled', { error: ORPHANED, mode: 'any' })) {
            this.opts.logger.warn({ jobId: id }, 'cancelled a synchronous job whose caller left with its worker');
            await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
          }
          await bull.moveToCompleted('cancelled', promptId, false).catch(() => undefined);
          continue;
        }
        if (outcome !== 'claimed' && outcome !== 'leftover' && outcome !== 'retaken') {
          // Cancelled while it waited, or deleted: BullMQ lets go of it too.
          await bull.moveToCompleted(outcome, promptId, false).catch(() => undefined);
          continue;
        }
        const row = await this.redis.hgetall(k.job(id));
        const record = toRecord(id, row);
        if (outcome === 'leftover' && record.cancelRequested && record.backend !== (where ?? null)) {
          // Cancelled (or reset) after its worker died: it ends now, as asked; its prompt stays on a
          // backend we cannot reach (the worker that has it finds the job ended when it is back).
          const error = record.cancelRequested;
          const status = stoppedAs(error);
          if (await this.end(id, status, { error, mode: 'any' })) {
            this.opts.logger.warn({ jobId: id, backend: record.backend }, `a job left running was ${status} as asked before`);
            await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
          }
          await bull.moveToFailed(new Error(error.message), promptId, false).catch(() => undefined);
          continue;
        }
        if (outcome === 'leftover' && !record.cancelRequested && record.backend !== (where ?? null)) {
          // Its prompt was sent to another backend: only a worker with that backend can tell whether
          // it ran. One of ours (another runner here), or one that may come back, reconciles it;
          // its runners are told when it is due again, so they, not we, take it then.
          const waited = (now - Number(row.left_at ?? now)) * 1000;
          if (waited < this.opts.takeoverMs || this.backends.has(record.backend ?? '')) {
            const due = Date.now() + LEFTOVER_RETRY_MS;
            this.opts.logger.debug({ jobId: id, backend: record.backend }, 'a job left running on another backend: handed back');
            await bull.moveToDelayed(due, promptId).catch(() => undefined);
            await this.publish({ type: 'leftover', jobId: id, backend: record.backend ?? '', due }).catch(() => undefined);
            continue;
          }
          // Nobody came back for it: resubmitting here could run it twice, so it fails.
          const error = workerLost(record.backend, this.opts.takeoverMs);
          if (await this.end(id, 'failed', { error, mode: 'any', promptId: record.promptId })) {
            this.opts.logger.warn(
              { jobId: id, promptId: record.promptId, backend: record.backend },
              'failed a job a worker that died left running: its prompt may have run on a backend no worker has now',
            );
            await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
          }
          await bull.moveToFailed(new Error(error.message), promptId, false).catch(() => undefined);
          continue;
        }
        if (outcome === 'retaken') {
          this.opts.logger.warn({ jobId: id }, 'a job a worker that died left before sending its prompt runs again here');
        } else if (outcome === 'leftover' && !record.cancelRequested) {
          this.opts.logger.warn(
            { jobId: id, promptId: record.promptId, backend: record.backend },
            'took over a job a worker that died left running, to reconcile it with its backend',
          );
        }
        this.held.set(id, { bull, token: promptId, seq: record.seq, promptId: record.promptId });
        return record;
      }
    });
  }

  async finish(
    id: string,
    status: Exclude<JobStatus, 'pending' | 'running'>,
    outcome: { result?: JobResult; error?: ErrorBody; files?: KeptFile[]; at?: number },
  ): Promise<boolean> {
    const now = outcome.at ?? this.now();
    let kept = status === 'completed' ? (outcome.files ?? []) : [];
    let result = outcome.result;
    let error = outcome.error;
    const size = kept.reduce((sum, file) => sum + file.size, 0);
    if (size > this.opts.inlineMaxBytes) {
      status = 'failed';
      result = undefined;
      kept = [];
      error = {
        code: 'output_error',
        status: 502,
        message:
          `The inline outputs (${size} bytes) exceed JOB_QUEUE_INLINE_MAX_BYTES (${this.opts.inlineMaxBytes}) of the shared job queue; ` +
          'configure S3 (S3_BUCKET_NAME) so outputs go to a bucket, or raise the cap',
      };
    }
    // Let go of the lock whatever happens next: if the end cannot be recorded (Redis away), the
    // lock runs out and the job comes back as left running, to be reconciled with ComfyUI.
    const held = this.held.get(id);
    this.held.delete(id);
    const ended = await this.guard(async () => {
      if (kept.length > 0) {
        const fields: Array<string | Buffer> = [];
        for (const [index, file] of kept.entries()) fields.push(String(index), await fs.promises.readFile(file.path));
        await this.redis.hset(k.out(id), ...fields);
      }
      const changed = await this.end(id, status, { result, error, at: now, mode: 'any', promptId: held?.promptId });
      if (!changed && kept.length > 0) await this.redis.del(k.out(id));
      return changed;
    });
    if (held) {
      this.files.removeOutputs(String(held.seq));
      // BullMQ's view (and a dashboard's) follows: completed, or failed with the reason.
      const settle =
        status === 'completed'
          ? held.bull.moveToCompleted({ status }, held.token, false)
          : held.bull.moveToFailed(new Error(error?.message ?? status), held.token, false);
      await settle.catch(() => undefined);
    } else if (ended) {
      await this.queue.remove(id).catch(() => undefined);
    }
    if (ended) await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
    return ended;
  }

  async markPromptSent(job: JobRecord): Promise<void> {
    const sent = await this.guard(async () =>
      Number(await this.redis.eval(PROMPT_SENT_LUA, 1, k.job(job.id), job.promptId ?? '')),
    );
    if (sent !== 1) {
      throw new WorkerError(
        503,
        'worker_lost',
        `Job ${job.id} ended or was taken over by another worker (this one stopped renewing its lock) before its prompt was sent; not sent from here`,
      );
    }
  }

  async markStarted(id: string, at: number): Promise<void> {
    await this.guard(async () => {
      if ((await this.redis.hget(k.job(id), 'status')) !== 'running') return;
      await this.redis.multi().hset(k.job(id), 'started_at', String(at)).zadd(k.running, at, id).exec();
    });
  }

  async cancelPending(id: string, error: ErrorBody): Promise<boolean> {
    const now = this.now();
    const ended = await this.guard(() => this.end(id, 'cancelled', { error, at: now, mode: 'pending' }));
    if (ended) {
      // Taken by a runner meanwhile, it is locked: the runner sees it ended and lets it go.
      await this.queue.remove(id).catch(() => undefined);
      await this.publish({ type: 'finished', jobId: id }).catch(() => undefined);
    }
    return ended;
  }

  async putBack(id: string): Promise<void> {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    await held.bull.moveToDelayed(Date.now() + LEFTOVER_RETRY_MS, held.token).catch(() => undefined);
  }

  async requeue(id: string): Promise<boolean> {
    const done = await this.guard(
      async () =>
        Number(await this.redis.eval(REQUEUE_LUA, 5, k.job(id), k.pending, k.pendingSync, k.running, k.counts, id)) === 1,
    );
    const held = this.held.get(id);
    if (held) {
      this.files.removeOutputs(String(held.seq));
      await held.bull.moveToWait(held.token).catch(() => undefined);
    }
    if (done) await this.publish({ type: 'queued', jobId: id }).catch(() => undefined);
    return done;
  }

  async recent(limit: number): Promise<RecentJob[]> {
    return this.guard(async () => {
      const ids = await this.redis.zrevrange(k.all, '0', String(limit - 1));
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hmget(k.job(id), 'status', 'created_at', 'started_at', 'completed_at', 'error');
      const rows = (await pipeline.exec()) ?? [];
      const num = (v: string | null | undefined) => (v ? Number(v) : null);
      return ids.flatMap((id, i) => {
        const [status, created, started, completed, error] = (rows[i]?.[1] ?? []) as Array<string | null>;
        if (!status) return [];
        return [
          {
            id,
            status: status as JobStatus,
            createdAt: Number(created),
            startedAt: num(started),
            completedAt: num(completed),
            error: error ? (JSON.parse(error) as ErrorBody) : null,
          },
        ];
      });
    });
  }

  private async remove(id: string, keepUndelivered: boolean): Promise<boolean> {
    const deleted =
      Number(
        await this.redis.eval(
          DELETE_LUA,
          9,
          k.job(id),
          k.all,
          k.ended,
          k.counts,
          k.out(id),
          k.progress(id),
          hooks.hook(id),
          hooks.due,
          hooks.counts,
          id,
          keepUndelivered ? '1' : '0',
        ),
      ) === 1;
    // Its BullMQ job goes too, so the id can be used again.
    if (deleted) await this.queue.remove(id).catch(() => undefined);
    return deleted;
  }

  async deleteFinishedBefore(cutoff: number): Promise<number> {
    return this.guard(async () => {
      let deleted = 0;
      for (const id of await this.redis.zrangebyscore(k.ended, '-inf', `(${cutoff}`)) {
        if (await this.remove(id, true)) deleted++;
      }
      return deleted;
    });
  }

  async runningSince(cutoff: number): Promise<JobRecord[]> {
    return this.records(await this.guard(() => this.redis.zrangebyscore(k.running, '-inf', `(${cutoff}`)));
  }

  private async records(ids: string[]): Promise<JobRecord[]> {
    const found = await Promise.all(ids.map((id) => this.get(id)));
    return found.filter((job): job is JobRecord => job !== undefined);
  }

  async hasUndeliveredWebhook(id: string): Promise<boolean> {
    return this.guard(() => this.webhooks.hasUndelivered(id));
  }

  async deleteFinished(id: string): Promise<boolean> {
    return this.guard(() => this.remove(id, false));
  }

  async file(id: string, index: number): Promise<StoredFile | undefined> {
    const bytes = await this.guard(() => this.redis.hgetBuffer(k.out(id), String(index)));
    return bytes ? { size: bytes.length, bytes } : undefined;
  }

  /** Written on this machine while the job runs; moved into Redis when it ends. */
  outputSink(job: JobRecord): OutputSink {
    return this.files.outputs(String(job.seq));
  }

  async sweepFiles(): Promise<number> {
    const mine = new Set([...this.held.values()].map((held) => String(held.seq)));
    return this.files.sweep(new Set(), (key) => mine.has(key));
  }

  async queuePosition(job: JobRecord): Promise<number> {
    return this.guard(() => this.redis.zcount(k.pending, '-inf', `(${job.seq}`));
  }

  async pendingCount(): Promise<number> {
    return this.guard(() => this.redis.zcard(k.pending));
  }

  async counts(): Promise<StatusCounts> {
    const raw = await this.guard(() => this.redis.hgetall(k.counts));
    return {
      pending: Number(raw.pending ?? 0),
      running: Number(raw.running ?? 0),
      completed: Number(raw.completed ?? 0),
      failed: Number(raw.failed ?? 0),
      cancelled: Number(raw.cancelled ?? 0),
    };
  }

  /** Jobs a dead worker left running come back through claimNext (BullMQ's stalled jobs), not here. */
  async running(): Promise<JobRecord[]> {
    return [];
  }

  async pendingSync(): Promise<JobRecord[]> {
    return this.records(await this.guard(() => this.redis.zrange(k.pendingSync, '0', '-1')));
  }

  async saveProgress(id: string, progress: JobProgress): Promise<void> {
    await this.guard(() => this.redis.set(k.progress(id), JSON.stringify(progress), 'EX', PROGRESS_TTL_S));
    await this.held
      .get(id)
      ?.bull.updateProgress(progress.percentage)
      .catch(() => undefined);
  }

  async progressOf(id: string): Promise<JobProgress | undefined> {
    const text = await this.guard(() => this.redis.get(k.progress(id)));
    return text ? (JSON.parse(text) as JobProgress) : undefined;
  }

  async publish(message: StoreMessage): Promise<void> {
    await this.guard(async () => {
      // A cancel sticks to the job, for whoever takes it over if the worker running it has died.
      if (message.type === 'cancel')
        await this.redis.eval(CANCEL_FLAG_LUA, 1, k.job(message.jobId), JSON.stringify(message.error));
      await this.redis.publish(k.channel, JSON.stringify(message));
    });
  }

  private tell(message: StoreMessage): void {
    for (const listener of this.listeners) listener(message);
  }

  onMessage(listener: (message: StoreMessage) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.lockTimer);
    clearInterval(this.aliveTimer);
    // Its callers are answered or gone: its synchronous jobs left pending are nobody's now.
    await this.redis.del(k.alive(this.instance)).catch(() => undefined);
    // Jobs still held stay locked until their lock runs out: another worker then takes them over.
    await this.worker?.close(true).catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    this.workerConnection?.disconnect();
    this.subscriber.disconnect();
    this.redis.disconnect();
  }
}
