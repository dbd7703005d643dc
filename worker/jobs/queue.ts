// The job facade: what doors (and the benchmark) use to work with jobs: submit, look up, wait
// for the end, cancel, and read the queue's figures. Sync and async requests go through the same
// store and the same runner, so they share one order. Doors see this, never the store.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { KeptFile } from '../delivery/types';
import { WorkerError, notFound } from '../errors';
import type { Base64Source } from '../util/streamed-json';
import type { DeliveryState } from '../webhooks/outbox';
import type { JobEvents } from './events';
import type { RunnerPool } from './runner-pool';
import type { InputSpool } from './files';
import type { JobStore, RecentJob, StatusCounts, StoredFile } from './store';
import { TERMINAL_STATUSES, type JobOutput, type JobProgress, type JobRecord, type NewJob } from './types';

export type { RecentJob, StatusCounts };

/** An inline output's bytes (undefined if not kept, or gone). */
export type InlineFiles = (output: JobOutput) => Base64Source | undefined;

interface Waiter {
  resolve(job: JobRecord): void;
  reject(err: unknown): void;
}

export type CancelOutcome = 'cancelled' | 'cancelling' | 'already_finished';

/**
 * Answers read a file in pieces of 3 × 16 KiB into one buffer reused for the whole file: each
 * piece but the last is whole base64 groups, its text (64 KiB) is a short-lived young-generation
 * string, and no piece is left behind as garbage for the collector to find later.
 */
const READ_BYTES = 3 * 16 * 1024;
/** With a shared store, a running job's progress is saved for other workers at most this often. */
const PROGRESS_SAVE_MS = 500;
/** With a shared store, a waiting caller's job is also read again this often. */
const SHARED_WAIT_POLL_MS = 2_000;
/** With a shared store, watchers (the event stream) read the job again this often. */
const SHARED_WATCH_MS = 1_000;

export class JobQueue {
  private readonly store: JobStore;
  private readonly runner: RunnerPool;
  private readonly events: JobEvents;
  private readonly maxQueueSize: number;
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** What watch() subscribers to tell, by job id. */
  private readonly watchers = new Map<string, Set<() => void>>();
  /** Set when the worker stops: new jobs are refused with it. */
  private closed: WorkerError | undefined;
  /** With a shared store: tells watchers to read again now and then. */
  private watchTicker: NodeJS.Timeout | undefined;

  constructor(opts: { store: JobStore; runner: RunnerPool; events: JobEvents; maxQueueSize: number }) {
    this.store = opts.store;
    this.runner = opts.runner;
    this.events = opts.events;
    this.maxQueueSize = opts.maxQueueSize;
    // One set of listeners for every watch: a job's own events tell its watchers, a job taken or
    // ended tells them all (queue positions move).
    const everyWatcher = () => this.notifyWatchers();
    const ownWatchers = (job: JobRecord) => {
      for (const notify of this.watchers.get(job.id) ?? []) notify();
    };
    this.events.on('taken', everyWatcher);
    this.events.on('finished', everyWatcher);
    this.events.on('started', ownWatchers);
    this.events.on('progress', ownWatchers);
    this.events.on('completing', (job) => this.resolveWaiters(job));
    this.events.on('finished', (job) => this.resolveWaiters(job));
    if (this.store.shared) this.followOtherWorkers();
  }

  private notifyWatchers(): void {
    for (const set of this.watchers.values()) for (const notify of set) notify();
  }

  private resolveWaiters(job: JobRecord): void {
    const waiting = this.waiters.get(job.id);
    if (!waiting) return;
    this.waiters.delete(job.id);
    for (const waiter of waiting) waiter.resolve(job);
  }

  /**
   * A shared store: jobs taken here may run on another worker, and a cancel sent here may be for a
   * job running there. Ends reach the callers waiting here; cancels reach the runner that has the
   * job; progress is kept in the store for /status anywhere (at most twice a second per job).
   */
  private followOtherWorkers(): void {
    this.store.onMessage((message) => {
      // Jobs taken and ended elsewhere move queue positions here too.
      if (message.type === 'finished' || message.type === 'queued') this.notifyWatchers();
      if (message.type === 'finished') {
        if (!this.waiters.has(message.jobId)) return;
        void this.store.get(message.jobId).then(
          (job) => {
            if (job && TERMINAL_STATUSES.includes(job.status)) this.resolveWaiters(job);
          },
          () => undefined, // the waiter's own timeout or a later message settles it
        );
      } else if (message.type === 'queued') {
        this.runner.wake();
      } else if (message.type === 'cancel') {
        const { code, message: text, status, details } = message.error;
        this.runner.abortRunning(message.jobId, new WorkerError(status, code, text, { details }));
      }
    });
    const savedAt = new Map<string, number>();
    this.events.on('progress', (job, progress) => {
      const now = Date.now();
      if (progress.percentage < 100 && now - (savedAt.get(job.id) ?? 0) < PROGRESS_SAVE_MS) return;
      savedAt.set(job.id, now);
      void this.store.saveProgress(job.id, progress).catch(() => undefined);
    });
    this.events.on('finished', (job) => savedAt.delete(job.id));
    // Progress and starts on other workers come as no event here: watchers read again each second.
    this.watchTicker = setInterval(() => this.notifyWatchers(), SHARED_WATCH_MS);
    this.watchTicker.unref();
  }

  /** The worker is stopping (close() was called): nothing new is admitted. */
  get stopping(): boolean {
    return this.closed !== undefined;
  }

  /**
   * The worker is stopping: every later submit is refused (503 with Retry-After), and each job a
   * caller waits for on its connection that has not been taken yet ends now, failed with a 503,
   * so that caller gets an answer instead of a dropped connection. Async jobs stay pending for
   * the next process.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.watchTicker);
    const closed = new WorkerError(503, 'worker_stopping', 'The worker is stopping; retry shortly (on another worker)', {
      headers: { 'Retry-After': '5' },
    });
    this.closed = closed;
    const error = closed.toBody();
    // A shared store's other synchronous jobs are waited for on other workers: only ours end.
    const ours = async () => {
      const jobs = await Promise.all([...this.waiters.keys()].map((id) => this.store.get(id)));
      return jobs.filter((job): job is JobRecord => job?.status === 'pending' && job.sync);
    };
    for (const job of this.store.shared ? await ours() : await this.store.pendingSync()) {
      if (!(await this.store.finish(job.id, 'failed', { error }))) continue;
      const final = await this.store.get(job.id);
      if (final) this.events.emit('finished', final);
    }
    // Callers waiting on a job that stays queued for the next process (RunPod's /runsync) are
    // answered now with how it stands.
    for (const [id, set] of [...this.waiters]) {
      if ((await this.store.get(id))?.status !== 'pending') continue;
      if (this.waiters.get(id) === set) this.waiters.delete(id);
      for (const waiter of set) waiter.reject(closed);
    }
  }

  /**
   * Ends every wait still open (a job left running at a stop, for the next process to recover):
   * each waiting caller is answered with this error rather than having its connection dropped.
   */
  releaseWaiters(error: WorkerError): void {
    const waiting = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of waiting) for (const waiter of set) waiter.reject(error);
  }

  /** Stores the job and wakes the runner. 503 with Retry-After when MAX_QUEUE_SIZE jobs wait. */
  async submit(job: NewJob): Promise<JobRecord> {
    if (this.closed) throw this.closed;
    if ((await this.store.pendingCount()) >= this.maxQueueSize) {
      throw new WorkerError(503, 'queue_full', `The queue is full (${this.maxQueueSize} jobs waiting); retry shortly`, {
        headers: { 'Retry-After': '5' },
      });
    }
    let record: JobRecord;
    try {
      record = await this.store.insert(job);
    } catch (err) {
      if (!(err instanceof WorkerError) || err.code !== 'conflict') throw err;
      const existing = await this.reuseId(job);
      if (existing) return existing;
      record = await this.store.insert(job);
    }
    this.events.emit('submitted', record);
    this.runner.wake();
    return record;
  }

  /**
   * A request id that names an existing job (clients retry with the same id, e.g. Vast's SDK after
   * a 5xx): a caller waiting on the connection joins the job while it is pending or running; an
   * ended job gives way to the new one, as the api-wrapper's overwrite did. Otherwise 409.
   * Returns the job to join, or undefined when the id is free again.
   */
  private async reuseId(job: NewJob): Promise<JobRecord | undefined> {
    const existing = await this.store.get(job.id);
    if (!existing) return undefined;
    if (!TERMINAL_STATUSES.includes(existing.status)) {
      // Only a retry of the same kind of request joins: never an async job, nor another door's.
      if (job.sync && existing.sync && existing.source === job.source && existing.contract === job.contract) return existing;
      throw new WorkerError(409, 'conflict', `A job with id ${job.id} is still ${existing.status}`, { field: 'request_id' });
    }
    if ((await this.store.hasUndeliveredWebhook(job.id)) || !(await this.store.deleteFinished(job.id))) {
      throw new WorkerError(409, 'conflict', `The job with id ${job.id} is still delivering its webhook; retry shortly`, {
        field: 'request_id',
      });
    }
    return undefined;
  }

  get(id: string): Promise<JobRecord | undefined> {
    return this.store.get(id);
  }

  /** The job, or a 404 naming it. */
  async require(id: string): Promise<JobRecord> {
    const job = await this.store.get(id);
    if (!job) throw notFound(`Job ${id} not found`);
    return job;
  }

  /**
   * Where a request writes the input images it decodes while its body is read: the files a job
   * does not take are deleted when the request releases it.
   */
  inputSpool(): InputSpool {
    return this.store.files.spool();
  }

  /**
   * The job's inline outputs' bytes, to stream as base64 into an answer: looked up once here, so
   * the answer is then rendered without waiting. An output not kept (or gone) gives undefined.
   */
  async inlineFiles(job: JobRecord): Promise<InlineFiles> {
    const found = new Map<number, Base64Source>();
    for (const output of job.result?.outputs ?? []) {
      if (output.blob === undefined || found.has(output.blob)) continue;
      const source = base64Source(await this.inlineFile(job, output.blob));
      if (source) found.set(output.blob, source);
    }
    return (output) => (output.blob === undefined ? undefined : found.get(output.blob));
  }

  /**
   * Base64 of the job's inline outputs, in memory: for webhook bodies, which are built whole
   * (answers stream them with inlineFiles).
   */
  async inlineData(job: JobRecord): Promise<(output: JobOutput) => string | undefined> {
    const data = new Map<number, string>();
    for (const output of job.result?.outputs ?? []) {
      if (output.blob === undefined || data.has(output.blob)) continue;
      const file = await this.inlineFile(job, output.blob);
      if (!file) continue;
      if ('bytes' in file && file.bytes) data.set(output.blob, file.bytes.toString('base64'));
      else if ('path' in file) {
        try {
          data.set(output.blob, (await fs.promises.readFile(file.path)).toString('base64'));
        } catch {
          // deleted with its job since the record was read
        }
      }
    }
    return (output) => (output.blob === undefined ? undefined : data.get(output.blob));
  }

  /** Where an inline output is: as the runner that finished the job kept it, or as stored. */
  private async inlineFile(job: JobRecord, blob: number): Promise<KeptFile | StoredFile | undefined> {
    return job.kept?.[blob] ?? (await this.store.file(job.id, blob));
  }

  counts(): Promise<StatusCounts> {
    return this.store.counts();
  }

  /** The latest jobs, newest first. */
  recent(limit: number): Promise<RecentJob[]> {
    return this.store.recent(limit);
  }

  /** Deletes one ended job and its files; false if it is pending, running or unknown. */
  deleteFinished(id: string): Promise<boolean> {
    return this.store.deleteFinished(id);
  }

  /** The state of a job's final webhook delivery, if it has one. */
  webhookState(id: string): Promise<DeliveryState | undefined> {
    return this.store.webhooks.state(id);
  }

  /** Where jobs are kept (for /health). */
  storeInfo(): { backend: string; path: string } {
    return this.store.describe();
  }

  /**
   * Running jobs whose prompt still waits in ComfyUI's queue behind another (the runner hands the
   * next prompt over early to keep ComfyUI busy): taken, but not executing yet.
   */
  waitingInBackend(): string[] {
    return this.runner.waitingJobIds;
  }

  /** A running job's progress: from its runner here, or as the worker running it saved it. */
  async progress(id: string): Promise<JobProgress | undefined> {
    return this.runner.progressOf(id) ?? (this.store.shared ? await this.store.progressOf(id) : undefined);
  }

  async queuePosition(job: JobRecord): Promise<number | undefined> {
    return job.status === 'pending' ? await this.store.queuePosition(job) : undefined;
  }

  /**
   * Tells `onChange` whenever what a job shows may have changed: a job ahead of it was taken or
   * ended (its queue position), it started or progressed (node, step). Calls are coalesced to one
   * per turn of the event loop; the listener reads the job's state itself. In memory, from the
   * job events: nothing is polled. Returns the unsubscribe.
   */
  watch(id: string, onChange: () => void): () => void {
    let queued = false;
    let subscribed = true;
    const notify = () => {
      if (queued) return;
      queued = true;
      setImmediate(() => {
        queued = false;
        if (subscribed) onChange();
      });
    };
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(notify);
    return () => {
      subscribed = false;
      set.delete(notify);
      if (set.size === 0 && this.watchers.get(id) === set) this.watchers.delete(id);
    };
  }

  /** Someone is still waiting on a connection for this job's answer. */
  hasWaiters(id: string): boolean {
    return (this.waiters.get(id)?.size ?? 0) > 0;
  }

  /** Resolves with the job's final state. The signal ends the wait (not the job). */
  wait(id: string, signal?: AbortSignal): Promise<JobRecord> {
    return new Promise((resolve, reject) => {
      // The waiter is in place before the store is read, so an end between the two is not missed.
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      const waiting = set;
      // With a shared store the end may happen on another worker while a message is lost (Redis
      // restarting): the store is read again now and then.
      const poll = this.store.shared ? setInterval(() => void check(), SHARED_WAIT_POLL_MS) : undefined;
      const leave = () => {
        clearInterval(poll);
        waiting.delete(waiter);
        if (waiting.size === 0 && this.waiters.get(id) === waiting) this.waiters.delete(id);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        resolve: (final) => {
          clearInterval(poll);
          signal?.removeEventListener('abort', onAbort);
          resolve(final);
        },
        reject: (err) => {
          clearInterval(poll);
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        leave();
        reject(signal?.reason);
      };
      waiting.add(waiter);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      let first = true;
      const check = async () => {
        const initial = first;
        first = false;
        let job: JobRecord | undefined;
        try {
          job = await this.store.get(id);
        } catch (err) {
          // A later look settles it; only the first one, which says whether the job exists, fails the wait.
          if (!initial) return;
          leave();
          return reject(err);
        }
        if (!job) {
          leave();
          reject(notFound(`Job ${id} not found`));
        } else if (TERMINAL_STATUSES.includes(job.status)) {
          leave();
          resolve(job);
        }
      };
      void check();
    });
  }

  /**
   * Cancels a job: a pending one at once; a running one by interrupting its prompt (it ends as
   * cancelled shortly after, reported through `finished`); one a previous process left running,
   * not yet recovered, at once.
   */
  async cancel(id: string, reason: WorkerError): Promise<CancelOutcome> {
    const job = await this.require(id);
    if (job.status === 'pending' && (await this.store.cancelPending(id, reason.toBody()))) {
      const final = await this.store.get(id);
      if (final) this.events.emit('finished', final);
      return 'cancelled';
    }
    const stopped = await this.runner.stopJob(id, reason);
    if (stopped === 'aborting') return 'cancelling';
    if (stopped === 'ended') return 'cancelled';
    if (this.store.shared && (await this.store.get(id))?.status === 'running') {
      // Running on another worker: its runner interrupts it when the message reaches it.
      await this.store.publish({ type: 'cancel', jobId: id, error: reason.toBody() });
      return 'cancelling';
    }
    return 'already_finished';
  }
}

/** An inline output's bytes to stream as base64: from memory, or from its file (gone: undefined). */
function base64Source(file: KeptFile | StoredFile | undefined): Base64Source | undefined {
  if (!file) return undefined;
  const bytes = 'bytes' in file ? file.bytes : undefined;
  if (bytes) return { size: bytes.length, open: () => Readable.from([bytes]), read: () => bytes };
  if (!('path' in file)) return undefined;
  let size: number;
  try {
    size = fs.statSync(file.path).size;
  } catch {
    return undefined; // deleted with its job since the record was read
  }
  const { path } = file;
  return { size, open: () => readPieces(path), read: () => fs.readFileSync(path) };
}

/** The file's bytes in pieces of READ_BYTES, each in the same buffer (valid until the next). */
async function* readPieces(path: string): AsyncGenerator<Buffer> {
  const handle = await fs.promises.open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
