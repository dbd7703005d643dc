// The job store on SQLite, the embedded default for one machine. better-sqlite3 is synchronous,
// so every statement is atomic with respect to the event loop. WAL mode lets /status readers run beside the runner's writes; a busy timeout covers
// another process holding the file. Claiming the next job is a single UPDATE ... RETURNING.
import fs from 'node:fs';
import path from 'node:path';
import Database, { type Database as Db } from 'better-sqlite3';
import { SpooledImage, imageTextBytes, type InputImage } from '../../comfy/inputs';
import type { KeptFile, OutputSink } from '../../delivery/types';
import { ConfigError, WorkerError, type ErrorBody } from '../../errors';
import type { SecretBox } from '../../secrets/secret-box';
import { SqliteWebhookOutbox, UNDELIVERED_JOB_IDS_SQL } from '../../webhooks/sqlite-outbox';
import { JobFiles, filesFolderOf } from '../files';
import type { JobStore, RecentJob, StatusCounts, StoredFile } from '../store';
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
import { migrate } from './migrations';

/**
 * An input image as the `inputs` column keeps it: a URL as text, decoded bytes as a file in the
 * job files folder. (Rows stored before files may still hold base64 text: it is used as it is.)
 */
type StoredInput = { name: string; image: string } | { name: string; file: string; size: number };

interface JobRow {
  seq: number;
  id: string;
  source: string;
  contract: string;
  sync: number;
  status: string;
  prompt_id: string | null;
  backend: string | null;
  attempts: number;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  error: string | null;
  secrets: Buffer | null;
  spec: string;
  inputs: string | null;
  result: string | null;
}

interface RecentRow {
  id: string;
  status: string;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  error: string | null;
}

export interface StoreOptions {
  path: string;
  /** The job files folder; default beside the database (`<path>-files`). */
  filesPath?: string;
  secrets: SecretBox;
  /** Milliseconds since the epoch; tests pass a controlled clock. */
  clock?: () => number;
}

function rowToRecord(row: JobRow, files: JobFiles): JobRecord {
  const spec = JSON.parse(row.spec) as JobSpec;
  spec.images = row.inputs ? (JSON.parse(row.inputs) as StoredInput[]).map((input) => toImage(input, files)) : [];
  return {
    id: row.id,
    seq: row.seq,
    source: row.source,
    contract: row.contract,
    sync: row.sync === 1,
    status: row.status as JobStatus,
    spec,
    promptId: row.prompt_id,
    backend: row.backend,
    attempts: row.attempts,
    result: row.result ? (JSON.parse(row.result) as JobResult) : null,
    error: row.error ? (JSON.parse(row.error) as ErrorBody) : null,
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
  };
}

function toImage(input: StoredInput, files: JobFiles): InputImage {
  return 'file' in input ? { name: input.name, image: new SpooledImage(files.resolve(input.file), input.size) } : input;
}

/** The recorded paths of a row's input files. */
function inputFiles(inputs: string | null): string[] {
  if (!inputs) return [];
  return (JSON.parse(inputs) as StoredInput[]).flatMap((input) => ('file' in input ? [input.file] : []));
}

function openDatabase(file: string): Db {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (err) {
    throw new ConfigError(`SQLITE_DB_PATH: cannot create the folder of ${file}: ${(err as Error).message}`);
  }
  let db: Db | undefined;
  try {
    db = new Database(file);
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a committed job survives a process crash; only an OS crash can lose the last ones.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db);
    return db;
  } catch (err) {
    db?.close();
    const code = (err as { code?: string }).code ?? '';
    const reason =
      code === 'SQLITE_NOTADB'
        ? 'is not a SQLite database'
        : code.startsWith('SQLITE_READONLY') || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_IOERR'
          ? `cannot be opened for writing (${code})`
          : (err as Error).message;
    throw new ConfigError(`SQLITE_DB_PATH: ${file} ${reason}`);
  }
}

function prepareStatements(db: Db) {
  return {
    insert: db.prepare(
      `INSERT INTO jobs (id, source, contract, sync, status, created_at, secrets, spec, inputs, qord)
       VALUES (@id, @source, @contract, @sync, 'pending', @created_at, @secrets, @spec, @inputs,
               (SELECT last + 1 FROM queue_order))`,
    ),
    get: db.prepare('SELECT * FROM jobs WHERE id = ?'),
    // Between the claim and /prompt: only the sealed column, not the row's spec and result.
    secrets: db.prepare('SELECT secrets FROM jobs WHERE id = ?'),
    claim: db.prepare(
      `UPDATE jobs SET status = 'running', started_at = @now, prompt_id = @prompt_id, backend = @backend, attempts = attempts + 1
       WHERE seq = (SELECT seq FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1)
       RETURNING *`,
    ),
    ending: db.prepare(`SELECT seq, inputs FROM jobs WHERE id = ? AND status IN ('pending', 'running')`),
    finish: db.prepare(
      `UPDATE jobs SET status = @status, completed_at = @now, result = @result, error = @error,
                       secrets = NULL, inputs = NULL
       WHERE id = @id AND status IN ('pending', 'running')`,
    ),
    markStarted: db.prepare(`UPDATE jobs SET started_at = ? WHERE id = ? AND status = 'running'`),
    cancelPending: db.prepare(
      `UPDATE jobs SET status = 'cancelled', completed_at = @now, error = @error, secrets = NULL, inputs = NULL
       WHERE id = @id AND status = 'pending'`,
    ),
    // Migration 7: the ordinal distance to the head, less the holes between (never a COUNT of the queue).
    position: db.prepare(
      `WITH me AS (SELECT qord FROM jobs WHERE seq = ? AND status = 'pending'),
            head AS (SELECT qord FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1)
       SELECT (SELECT qord FROM me) - (SELECT qord FROM head)
              - (SELECT COUNT(*) FROM queue_holes WHERE ord < (SELECT qord FROM me)) AS n`,
    ),
    headOrd: db.prepare(`SELECT qord FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1`),
    lastOrd: db.prepare('SELECT last FROM queue_order'),
    qordOf: db.prepare('SELECT qord FROM jobs WHERE id = ?'),
    unhole: db.prepare('DELETE FROM queue_holes WHERE ord = ?'),
    // The ordinals in (after, before): jobs between a requeued job and the old head, none pending.
    fillHoles: db.prepare(
      `WITH RECURSIVE r(o) AS (SELECT @after + 1 UNION ALL SELECT o + 1 FROM r WHERE o + 1 < @before)
       INSERT OR IGNORE INTO queue_holes (ord) SELECT o FROM r WHERE o < @before`,
    ),
    counts: db.prepare('SELECT status, n FROM job_counts'),
    pendingCount: db.prepare(`SELECT n FROM job_counts WHERE status = 'pending'`),
    running: db.prepare(`SELECT * FROM jobs WHERE status = 'running' ORDER BY seq`),
    pendingSync: db.prepare(`SELECT * FROM jobs WHERE status = 'pending' AND sync = 1 ORDER BY seq`),
    requeue: db.prepare(
      `UPDATE jobs SET status = 'pending', started_at = NULL, prompt_id = NULL, backend = NULL WHERE id = ? AND status = 'running'`,
    ),
    recent: db.prepare(`SELECT id, status, created_at, started_at, completed_at, error FROM jobs ORDER BY seq DESC LIMIT ?`),
    // A job whose webhook is still to be delivered is kept until it is (or gives up).
    deleteOld: db.prepare(
      `DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at < ?
         AND id NOT IN (${UNDELIVERED_JOB_IDS_SQL})
       RETURNING seq`,
    ),
    runningSince: db.prepare(`SELECT * FROM jobs WHERE status = 'running' AND started_at < ? ORDER BY seq`),
    deleteTerminal: db.prepare(`DELETE FROM jobs WHERE id = ? AND status IN ('completed', 'failed', 'cancelled') RETURNING seq`),
    addFile: db.prepare('INSERT INTO job_files (job_id, idx, path, size) VALUES (?, ?, ?, ?)'),
    file: db.prepare('SELECT path, size, bytes FROM job_files WHERE job_id = ? AND idx = ?'),
    inputsInUse: db.prepare('SELECT inputs FROM jobs WHERE inputs IS NOT NULL'),
    seqExists: db.prepare('SELECT 1 FROM jobs WHERE seq = ?'),
  };
}

export class SqliteJobStore implements JobStore {
  readonly path: string;
  /** Final webhook deliveries live in the same file, so ending a job arms its delivery atomically. */
  readonly webhooks: SqliteWebhookOutbox;
  readonly files: JobFiles;
  private readonly db: Db;
  private readonly box: SecretBox;
  private readonly clock: () => number;
  private readonly stmt: ReturnType<typeof prepareStatements>;

  constructor(opts: StoreOptions) {
    this.path = opts.path;
    this.box = opts.secrets;
    this.clock = opts.clock ?? Date.now;
    this.db = openDatabase(opts.path);
    try {
      this.files = new JobFiles(opts.filesPath ?? filesFolderOf(opts.path));
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.stmt = prepareStatements(this.db);
    this.webhooks = new SqliteWebhookOutbox(this.db, this.box);
  }

  /** One process owns the file (its recovery handles what another left running). */
  readonly shared = false;

  async putBack(): Promise<void> {
    // Jobs left running are read from running() again on the next recovery pass.
  }

  async saveProgress(): Promise<void> {
    // The runner that has the job is in this process and answers for its progress.
  }

  async progressOf(): Promise<JobProgress | undefined> {
    return undefined;
  }

  async publish(): Promise<void> {
    // No other process shares the file: its job events already tell this one.
  }

  onMessage(): void {
    // Nothing is ever published.
  }

  describe(): { backend: string; path: string } {
    return { backend: 'sqlite', path: this.path };
  }

  now(): number {
    return this.clock() / 1000;
  }

  /** Stores a new pending job. A second job with the same id is a 409. */
  async insert(job: NewJob): Promise<JobRecord> {
    // The webhook target is kept (sealed) with its delivery only, not in the job's spec.
    const { images: _images, webhook: _webhook, ...spec } = job.spec;
    const { webhookSecret, ...jobSecrets } = job.secrets ?? {};
    const hasSecrets = Object.values(jobSecrets).some((v) => v !== undefined);
    const createdAt = this.now();
    // Input images go to files before the row refers to them; the row keeps their paths.
    const { inputs, images, written, files } = this.storeInputs(job.spec.images);
    let seq = 0;
    try {
      this.db.transaction(() => {
        const info = this.stmt.insert.run({
          id: job.id,
          source: job.source,
          contract: job.contract,
          sync: job.sync ? 1 : 0,
          created_at: createdAt,
          secrets: hasSecrets ? this.box.seal(jobSecrets) : null,
          spec: JSON.stringify(spec),
          inputs: inputs.length > 0 ? JSON.stringify(inputs) : null,
        });
        seq = Number(info.lastInsertRowid);
        const hook = job.spec.webhook;
        // The webhook's secret lives with its delivery, which outlives the job's other secrets.
        if (hook) this.webhooks.addNow(job.id, hook, webhookSecret, createdAt);
      })();
    } catch (err) {
      for (const file of written) this.files.discard(file);
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new WorkerError(409, 'conflict', `A job with id ${job.id} already exists`, { field: 'request_id' });
      }
      throw err;
    }
    for (const file of files) this.files.adopt(file);
    // Built here rather than read back: admission is on the hot path of a deep queue.
    return pendingRecord(job, seq, createdAt, images);
  }

  /**
   * The `inputs` column for these images: spooled ones by their path, text ones (base64, data URI)
   * decoded into new files here, URLs as they are. `files` are the files the job will own.
   */
  private storeInputs(images: InputImage[]): { inputs: StoredInput[]; images: InputImage[]; written: string[]; files: string[] } {
    const inputs: StoredInput[] = [];
    const kept: InputImage[] = [];
    const written: string[] = [];
    const files: string[] = [];
    try {
      for (const { name, image } of images) {
        let spooled = typeof image === 'string' ? undefined : image;
        if (typeof image === 'string') {
          const bytes = imageTextBytes(image);
          if (bytes) {
            const file = this.files.writeInput(bytes);
            written.push(file);
            spooled = new SpooledImage(file, bytes.length);
          }
        }
        if (spooled) {
          files.push(spooled.path);
          inputs.push({ name, file: this.files.relative(spooled.path), size: spooled.size });
          kept.push({ name, image: spooled });
        } else {
          inputs.push({ name, image: image as string });
          kept.push({ name, image });
        }
      }
    } catch (err) {
      for (const file of written) this.files.discard(file);
      throw err;
    }
    return { inputs, images: kept, written, files };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = this.stmt.get.get(id) as JobRow | undefined;
    return row ? rowToRecord(row, this.files) : undefined;
  }

  /** The job's credentials, while it is not finished. */
  async secretsOf(id: string): Promise<JobSecrets> {
    const row = this.stmt.secrets.get(id) as { secrets: Buffer | null } | undefined;
    if (!row?.secrets) return {};
    try {
      return this.box.unseal<JobSecrets>(row.secrets);
    } catch {
      // The job is run without its credentials never: it fails with a reason an operator can act on.
      throw new WorkerError(
        500,
        'internal',
        `The credentials of job ${id} cannot be decrypted: they were sealed with another JOB_SECRETS_KEY (or key file)`,
      );
    }
  }

  /** Atomically marks the oldest pending job running with the given prompt id. */
  async claimNext(promptId: string, backend?: string): Promise<JobRecord | undefined> {
    const row = this.stmt.claim.get({ now: this.now(), prompt_id: promptId, backend: backend ?? null }) as JobRow | undefined;
    return row ? rowToRecord(row, this.files) : undefined;
  }

  /**
   * Ends a pending or running job. Returns false if it had already ended (first writer wins).
   * The outputs kept for inline delivery are recorded in the same transaction; once it is
   * committed, the job's input files go, and so do kept outputs of a job that did not complete.
   */
  async finish(
    id: string,
    status: Exclude<JobStatus, 'pending' | 'running'>,
    outcome: { result?: JobResult; error?: ErrorBody; files?: KeptFile[]; at?: number },
  ): Promise<boolean> {
    const now = outcome.at ?? this.now();
    const kept = status === 'completed' ? (outcome.files ?? []) : [];
    const ended = this.db.transaction(() => {
      const row = this.stmt.ending.get(id) as { seq: number; inputs: string | null } | undefined;
      if (!row) return undefined;
      const changed = this.stmt.finish.run({
        id,
        status,
        now,
        result: outcome.result ? JSON.stringify(outcome.result) : null,
        error: outcome.error ? JSON.stringify(outcome.error) : null,
      }).changes;
      if (changed === 0) return undefined;
      kept.forEach((file, index) => this.stmt.addFile.run(id, index, this.files.relative(file.path), file.size));
      this.webhooks.armNow(id, now);
      return row;
    })();
    if (!ended) {
      // Ended meanwhile (cancelled, reset): what this run kept has no job to answer.
      this.files.removeRecorded((outcome.files ?? []).map((file) => this.files.relative(file.path)));
      return false;
    }
    this.files.removeRecorded(inputFiles(ended.inputs));
    if (kept.length === 0) this.files.removeOutputs(String(ended.seq));
    return true;
  }

  /** One process: its recovery looks the prompt up in the same ComfyUI, so nothing to record. */
  async markPromptSent(): Promise<void> {}

  async markStarted(id: string, at: number): Promise<void> {
    this.stmt.markStarted.run(at, id);
  }

  /** Cancels a job only if it has not started; false otherwise. */
  async cancelPending(id: string, error: ErrorBody): Promise<boolean> {
    const ended = this.db.transaction(() => {
      const now = this.now();
      const row = this.stmt.ending.get(id) as { seq: number; inputs: string | null } | undefined;
      if (!row || this.stmt.cancelPending.run({ id, now, error: JSON.stringify(error) }).changes !== 1) return undefined;
      this.webhooks.armNow(id, now);
      return row;
    })();
    if (!ended) return false;
    this.files.removeRecorded(inputFiles(ended.inputs));
    return true;
  }

  /**
   * Puts a job a previous process left running back at the head of the queue (its seq keeps its
   * place), to be claimed again with a new prompt id. False if it was not running.
   */
  async requeue(id: string): Promise<boolean> {
    return this.db.transaction(() => {
      const head = this.stmt.headOrd.get() as { qord: number } | undefined;
      if (this.stmt.requeue.run(id).changes !== 1) return false;
      const { qord } = this.stmt.qordOf.get(id) as { qord: number };
      this.stmt.unhole.run(qord);
      // Back ahead of the head: every ordinal between it and the old head left the queue.
      if (head === undefined || qord < head.qord) {
        const before = head?.qord ?? (this.stmt.lastOrd.get() as { last: number }).last + 1;
        this.stmt.fillHoles.run({ after: qord, before });
      }
      return true;
    })();
  }

  /** The latest jobs, newest first (for /stats). */
  async recent(limit: number): Promise<RecentJob[]> {
    return (this.stmt.recent.all(limit) as RecentRow[]).map((row) => ({
      id: row.id,
      status: row.status as JobStatus,
      createdAt: row.created_at,
      startedAt: row.started_at,
      completedAt: row.completed_at,
      error: row.error ? (JSON.parse(row.error) as ErrorBody) : null,
    }));
  }

  /** Deletes completed, failed and cancelled jobs that ended before `cutoff` (epoch s), files too. */
  async deleteFinishedBefore(cutoff: number): Promise<number> {
    const deleted = this.stmt.deleteOld.all(cutoff) as Array<{ seq: number }>;
    for (const { seq } of deleted) this.files.removeOutputs(String(seq));
    return deleted.length;
  }

  /** Jobs running since before `cutoff` (epoch s). */
  async runningSince(cutoff: number): Promise<JobRecord[]> {
    return (this.stmt.runningSince.all(cutoff) as JobRow[]).map((row) => rowToRecord(row, this.files));
  }

  /** The job has a webhook that is not delivered yet (nor given up on). */
  async hasUndeliveredWebhook(id: string): Promise<boolean> {
    return this.webhooks.hasUndelivered(id);
  }

  /** Deletes one job if it has ended (its files too); false if it is pending, running or unknown. */
  async deleteFinished(id: string): Promise<boolean> {
    const deleted = this.stmt.deleteTerminal.get(id) as { seq: number } | undefined;
    if (deleted) this.files.removeOutputs(String(deleted.seq));
    return deleted !== undefined;
  }

  async file(id: string, index: number): Promise<StoredFile | undefined> {
    const row = this.stmt.file.get(id, index) as { path: string | null; size: number; bytes: Buffer | null } | undefined;
    if (!row) return undefined;
    return row.path !== null
      ? { size: row.size, path: this.files.resolve(row.path) }
      : { size: row.size, bytes: row.bytes ?? Buffer.alloc(0) };
  }

  /** The running job's outputs folder is named by its seq, which is never reused. */
  outputSink(job: JobRecord): OutputSink {
    return this.files.outputs(String(job.seq));
  }

  async sweepFiles(): Promise<number> {
    const referenced = new Set<string>();
    for (const row of this.stmt.inputsInUse.all() as Array<{ inputs: string }>) {
      for (const file of inputFiles(row.inputs)) referenced.add(file);
    }
    return this.files.sweep(referenced, (key) => /^\d+$/.test(key) && this.stmt.seqExists.get(Number(key)) !== undefined);
  }

  /** How many pending jobs are ahead of this one. */
  async queuePosition(job: JobRecord): Promise<number> {
    const n = (this.stmt.position.get(job.seq) as { n: number | null }).n;
    // Null when the job left the queue since it was read.
    return Math.max(0, n ?? 0);
  }

  async pendingCount(): Promise<number> {
    return (this.stmt.pendingCount.get() as { n: number }).n;
  }

  async counts(): Promise<StatusCounts> {
    const counts: StatusCounts = { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const row of this.stmt.counts.all() as Array<{ status: JobStatus; n: number }>) counts[row.status] = row.n;
    return counts;
  }

  /** Jobs a previous process left running. */
  async running(): Promise<JobRecord[]> {
    return (this.stmt.running.all() as JobRow[]).map((row) => rowToRecord(row, this.files));
  }

  /** Pending jobs whose caller waits on an open connection. */
  /** One transaction stores a job, and its callers are this process's: nothing to repair. */
  async repair(): Promise<number> {
    return 0;
  }

  async pendingSync(): Promise<JobRecord[]> {
    return (this.stmt.pendingSync.all() as JobRow[]).map((row) => rowToRecord(row, this.files));
  }

  /**
   * EXPLAIN QUERY PLAN of the statements on hot paths (admission, claim, /status, /stats, ending a
   * job), each step's detail line by statement name: tests assert they use indexes, not scans.
   */
  queryPlans(): Record<string, string[]> {
    const hot: Record<string, [string, unknown]> = {
      admission: [this.stmt.pendingCount.source, []],
      insert: [
        this.stmt.insert.source,
        { id: 'x', source: 'http', contract: 'wrapper', sync: 0, created_at: 0, secrets: null, spec: '{}', inputs: null },
      ],
      claimNext: [this.stmt.claim.source, { now: 0, prompt_id: 'p', backend: null }],
      get: [this.stmt.get.source, ['x']],
      queuePosition: [this.stmt.position.source, [1]],
      webhookState: ['SELECT * FROM webhook_deliveries WHERE job_id = ?', ['x']],
      counts: [this.stmt.counts.source, []],
      recent: [this.stmt.recent.source, [50]],
      ending: [this.stmt.ending.source, ['x']],
      finish: [this.stmt.finish.source, { id: 'x', status: 'completed', now: 0, result: null, error: null }],
      leaveQueueTrigger: [
        `DELETE FROM queue_holes WHERE ord < COALESCE((SELECT qord FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1), 0)`,
        [],
      ],
    };
    const plans: Record<string, string[]> = {};
    for (const [name, [sql, params]] of Object.entries(hot)) {
      const explain = this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      const rows = (Array.isArray(params) ? explain.all(...params) : explain.all(params)) as Array<{ detail: string }>;
      plans[name] = rows.map((row) => row.detail);
    }
    return plans;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
