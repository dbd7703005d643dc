// The Vast door's book of requests: what is in flight (admitted and not yet ended, queued or
// running), the admission rule, and the counters the autoscaler reports read. Every request that
// is admitted leaves through finish() exactly once, whatever way it ends.
//
// Admission (PyWorker's queue-time rule): before adding a request, the wait it would see is the
// workload already in flight divided by max_perf; above MAX_QUEUE_TIME it is refused (429).
// Until the benchmark has measured max_perf (0), that means one request at a time.
//
// Memory stays bounded over a worker's life: num_requests_recieved is a number, with only the
// last REQNUM_WINDOW reqnums kept to recognise one seen again; finished items wait for
// /delete_requests/ and leave once delivered, at most MAX_PENDING_FINISHED of them (while the
// autoscaler cannot be reached, later ones are counted as dropped instead of kept).

export type Outcome = 'Success' | 'Error' | 'Cancelled' | 'Rejected';

export interface InFlight {
  key: number;
  reqnum: number;
  requestIdx: number;
  workload: number;
  /** Epoch seconds. */
  enteredQueueAt: number;
  workStartedAt: number | undefined;
  /** The core job once submitted (so the runner's start can be matched). */
  jobId: string | undefined;
}

/** One /delete_requests/ item (times in epoch seconds). */
export interface FinishedItem {
  request_idx: number;
  success: boolean;
  status: Outcome;
  entered_queue_at: number;
  work_started_at: number | null;
  work_completed_at: number | null;
}

/** Workload totals since the last successful report. */
export interface Counters {
  received: number;
  cancelled: number;
  served: number;
  errored: number;
  rejected: number;
}

const ZERO: Counters = { received: 0, cancelled: 0, served: 0, errored: 0, rejected: 0 };

/** max_perf is never 0 in the division (PyWorker's floor). */
const MIN_PERF = 1e-5;

/**
 * How many distinct recent reqnums are remembered to count each one once. The autoscaler numbers
 * a worker's requests in increasing order, and a number only comes back when the same request is
 * retried or replayed soon after (the SDK itself refuses a reqnum more than 100 below the highest
 * seen); 10,000 numbers (a few hundred KB) is far beyond that. A reqnum older than the window would
 * be counted again.
 */
export const REQNUM_WINDOW = 10_000;
/** Finished items kept for /delete_requests/ while it cannot be delivered (about 2 MB at most). */
export const MAX_PENDING_FINISHED = 10_000;

export interface LedgerOptions {
  workloadPerRequest: number;
  maxQueueTimeS: number;
  /** Epoch milliseconds. */
  clock?: () => number;
  /** Default REQNUM_WINDOW. */
  reqnumWindow?: number;
  /** Default MAX_PENDING_FINISHED. */
  maxPendingFinished?: number;
}

export type Admission = { ok: true; entry: InFlight } | { ok: false; waitS: number };

export class LoadLedger {
  readonly workloadPerRequest: number;
  readonly maxQueueTimeS: number;
  /** Workload per second of every backend together, from the benchmark; 0 until it is known. */
  private measuredPerf = 0;
  /**
   * The share of the worker's ComfyUI backends that can take jobs now (always 1 with one): a GPU
   * that is down or faulted serves nothing, so admission and reports count only the others.
   */
  capacityShare: () => number = () => 1;
  /** Set by request start, success, error and reject (and by load and error states); cleared by a successful report. */
  updatePending = false;
  private readonly clock: () => number;
  private readonly inFlight = new Map<number, InFlight>();

  /** Workload per second the worker can serve now: the benchmark's, scaled to healthy backends. */
  get maxPerf(): number {
    return this.measuredPerf * this.capacityShare();
  }

  set maxPerf(perf: number) {
    this.measuredPerf = perf;
  }
  private nextKey = 1;
  private counters: Counters = { ...ZERO };
  /** Distinct reqnums seen since start (num_requests_recieved). */
  private receivedCount = 0;
  /** The most recent distinct reqnums, oldest first (a Set iterates in insertion order). */
  private readonly recentReqnums = new Set<number>();
  private readonly reqnumWindow: number;
  private finished: FinishedItem[] = [];
  private readonly maxPendingFinished: number;
  private droppedCount = 0;

  constructor(opts: LedgerOptions) {
    this.workloadPerRequest = opts.workloadPerRequest;
    this.maxQueueTimeS = opts.maxQueueTimeS;
    this.clock = opts.clock ?? Date.now;
    this.reqnumWindow = Math.max(1, opts.reqnumWindow ?? REQNUM_WINDOW);
    this.maxPendingFinished = Math.max(1, opts.maxPendingFinished ?? MAX_PENDING_FINISHED);
  }

  private now(): number {
    return this.clock() / 1000;
  }

  /** Total workload in flight (queued + running). */
  get curLoad(): number {
    let sum = 0;
    for (const entry of this.inFlight.values()) sum += entry.workload;
    return sum;
  }

  get numWorking(): number {
    return this.inFlight.size;
  }

  get workingRequestIdxs(): number[] {
    return [...this.inFlight.values()].map((e) => e.requestIdx);
  }

  get numReceived(): number {
    return this.receivedCount;
  }

  /** Finished items dropped undelivered because too many were waiting (since start). */
  get droppedFinished(): number {
    return this.droppedCount;
  }

  private see(reqnum: number): void {
    if (this.recentReqnums.has(reqnum)) return;
    this.receivedCount++;
    this.recentReqnums.add(reqnum);
    if (this.recentReqnums.size > this.reqnumWindow) {
      const oldest = this.recentReqnums.values().next();
      if (!oldest.done) this.recentReqnums.delete(oldest.value);
    }
  }

  /** Full: the new item is not kept (only appends and acks move the list, so ackFinished(count) stays right). */
  private addFinished(item: FinishedItem): void {
    if (this.finished.length >= this.maxPendingFinished) this.droppedCount++;
    else this.finished.push(item);
  }

  /** The wait a new request would see, in seconds. */
  estimatedWaitS(): number {
    return this.curLoad / Math.max(this.maxPerf, MIN_PERF);
  }

  /** Applies the queue-time rule; an admitted request counts as working at once. */
  admit(auth: { reqnum: number; request_idx: number }): Admission {
    const waitS = this.estimatedWaitS();
    if (waitS > this.maxQueueTimeS) {
      this.reject(auth);
      return { ok: false, waitS };
    }
    const entry: InFlight = {
      key: this.nextKey++,
      reqnum: auth.reqnum,
      requestIdx: auth.request_idx,
      workload: this.workloadPerRequest,
      enteredQueueAt: this.now(),
      workStartedAt: undefined,
      jobId: undefined,
    };
    this.inFlight.set(entry.key, entry);
    this.see(auth.reqnum);
    this.counters.received += entry.workload;
    this.updatePending = true;
    return { ok: true, entry };
  }

  /** A request refused before admission (bad signature, queue too long, worker in error). */
  reject(auth: { reqnum: number; request_idx: number }): void {
    this.see(auth.reqnum);
    this.counters.rejected += this.workloadPerRequest;
    this.addFinished({
      request_idx: auth.request_idx,
      success: false,
      status: 'Rejected',
      entered_queue_at: this.now(),
      work_started_at: 0,
      work_completed_at: 0,
    });
    this.updatePending = true;
  }

  /** The request's job reached the head of the FIFO and runs. */
  started(entry: InFlight): void {
    if (this.inFlight.has(entry.key) && entry.workStartedAt === undefined) entry.workStartedAt = this.now();
  }

  /** The in-flight entry of a core job, if it is one of ours. */
  byJob(jobId: string): InFlight | undefined {
    for (const entry of this.inFlight.values()) if (entry.jobId === jobId) return entry;
    return undefined;
  }

  /** Ends an admitted request; later calls for the same request do nothing. */
  finish(entry: InFlight, outcome: Exclude<Outcome, 'Rejected'>): void {
    if (!this.inFlight.delete(entry.key)) return;
    const now = this.now();
    if (outcome === 'Success') this.counters.served += entry.workload;
    else if (outcome === 'Error') this.counters.errored += entry.workload;
    else this.counters.cancelled += entry.workload;
    if (outcome !== 'Cancelled') this.updatePending = true;
    this.addFinished({
      request_idx: entry.requestIdx,
      success: outcome !== 'Error',
      status: outcome,
      entered_queue_at: entry.enteredQueueAt,
      work_started_at: entry.workStartedAt ?? (outcome === 'Cancelled' ? null : now),
      work_completed_at: outcome === 'Cancelled' ? null : now,
    });
  }

  /** The counters as they are now, to be sent; commit() them after a successful send. */
  counterSnapshot(): Counters {
    return { ...this.counters };
  }

  /** A report carrying `sent` was delivered: take it off (what came in meanwhile stays). */
  commitCounters(sent: Counters): void {
    for (const key of Object.keys(sent) as Array<keyof Counters>) {
      this.counters[key] = Math.max(0, this.counters[key] - sent[key]);
    }
  }

  /** Finished and rejected requests not yet delivered to /delete_requests/. */
  pendingFinished(): FinishedItem[] {
    return [...this.finished];
  }

  /** The first `count` items were delivered (items are only ever appended, so they are the ones sent). */
  ackFinished(count: number): void {
    this.finished = this.finished.slice(count);
  }
}
