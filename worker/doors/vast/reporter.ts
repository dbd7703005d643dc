// The autoscaler reports: POST /worker_status/ (the worker's load and performance, 17 fields)
// and POST /delete_requests/ (requests that ended). Both are checked every second and never
// overlap themselves. /worker_status/ goes out ~1 s after start, then while loading every 10 s;
// once loaded or in error whenever an update is pending (request start, success, error, reject,
// load, error) and at least every 10 s. Counters are taken off only after a successful send.
import fs from 'node:fs';
import type { Logger } from '../../observability/logger';
import type { AutoscalerClient } from './autoscaler';
import type { Counters, FinishedItem, LoadLedger } from './ledger';
import { dumps, PyFloat, type PyJson } from '../../util/pyjson';
import type { VastState } from './state';

/** The PyWorker version we speak for (vastai SDK 1.1.0's server). */
export const PYWORKER_VERSION = '1.1.0';
/** PyWorker never sends /delete_requests/ to this address. */
const SKIP_DELETE_ADDR = 'https://cloud.vast.ai/api/v0';
const GIB = 2 ** 30;

export interface ReporterOptions {
  client: AutoscalerClient;
  ledger: LoadLedger;
  state: VastState;
  /** int(CONTAINER_ID) */
  id: number;
  mtoken: string;
  /** The worker's public URL. */
  url: string;
  logger: Logger;
  /** Check interval; default 1 s. */
  tickMs?: number;
  /** Longest gap between reports; default 10 s. */
  idleMs?: number;
  /** Where disk usage is measured; default "/". */
  diskPath?: string;
  /** Addresses /delete_requests/ is never sent to; default PyWorker's https://cloud.vast.ai/api/v0. */
  skipDeleteAddrs?: string[];
}

/** The 17 fields, in PyWorker's order, with Python's int/float distinction. */
export interface WorkerStatus {
  id: number;
  mtoken: string;
  version: string;
  loadtime: PyFloat;
  cur_load: PyFloat;
  rej_load: PyFloat;
  new_load: PyFloat;
  error_msg: string;
  max_perf: PyFloat;
  cur_perf: PyFloat;
  cur_capacity: PyFloat;
  max_capacity: PyFloat;
  num_requests_working: number;
  num_requests_recieved: number;
  additional_disk_usage: PyFloat;
  working_request_idxs: number[];
  url: string;
}

export class VastReporter {
  private readonly opts: Required<ReporterOptions>;
  private readonly stopper = new AbortController();
  private statusTimer: NodeJS.Timeout | undefined;
  private deleteTimer: NodeJS.Timeout | undefined;
  private sendingStatus: Promise<void> | undefined;
  private sendingDeletes: Promise<void> | undefined;
  private lastSuccessMs = -Infinity;
  /** GiB used on disk at the last delivered report (PyWorker starts from 0). */
  private lastDiskGib = 0;
  private droppedLogged = 0;

  constructor(opts: ReporterOptions) {
    this.opts = { tickMs: 1_000, idleMs: 10_000, diskPath: '/', skipDeleteAddrs: [SKIP_DELETE_ADDR], ...opts };
  }

  start(): void {
    this.statusTimer = setInterval(() => this.statusTick(), this.opts.tickMs);
    this.deleteTimer = setInterval(() => this.deleteTick(), this.opts.tickMs);
  }

  /**
   * Stops reporting. With `flushMs`, what is still unsent (requests that ended while the worker
   * was stopping, the load they leave) is sent once more first, for at most that long.
   */
  async stop(flushMs = 0): Promise<void> {
    clearInterval(this.statusTimer);
    clearInterval(this.deleteTimer);
    if (flushMs > 0 && !this.stopper.signal.aborted) {
      const limit = setTimeout(() => this.stopper.abort(), flushMs);
      try {
        await Promise.all([this.sendingStatus, this.sendingDeletes]);
        const { ledger, client, skipDeleteAddrs } = this.opts;
        const items = ledger.pendingFinished();
        if (items.length > 0 && !client.addrs.every((addr) => skipDeleteAddrs.includes(addr))) await this.sendDeletes(items);
        if (ledger.updatePending) await this.sendStatus();
      } finally {
        clearTimeout(limit);
      }
    }
    this.stopper.abort();
    await Promise.all([this.sendingStatus, this.sendingDeletes]);
  }

  /** The report as it would be sent now. */
  status(counters: Counters = this.opts.ledger.counterSnapshot(), diskGib = this.diskUsedGib()): WorkerStatus {
    const { ledger, state } = this.opts;
    return {
      id: this.opts.id,
      mtoken: this.opts.mtoken,
      version: PYWORKER_VERSION,
      loadtime: new PyFloat(state.loadtimeS),
      cur_load: new PyFloat(ledger.curLoad),
      rej_load: new PyFloat(counters.rejected),
      new_load: new PyFloat(Math.max(counters.received - counters.cancelled, 0)),
      error_msg: state.errorMsg,
      max_perf: new PyFloat(state.loaded ? ledger.maxPerf : 0),
      cur_perf: new PyFloat(counters.served),
      cur_capacity: new PyFloat(0),
      max_capacity: new PyFloat(0),
      num_requests_working: ledger.numWorking,
      num_requests_recieved: ledger.numReceived,
      additional_disk_usage: new PyFloat(diskGib - this.lastDiskGib),
      working_request_idxs: ledger.workingRequestIdxs,
      url: this.opts.url,
    };
  }

  private statusTick(): void {
    if (this.sendingStatus) return;
    const { ledger, state } = this.opts;
    const sinceMs = Date.now() - this.lastSuccessMs;
    const settled = state.loaded || state.errorMsg !== '';
    const due = settled ? ledger.updatePending || sinceMs > this.opts.idleMs : sinceMs >= this.opts.idleMs;
    if (!due) return;
    this.sendingStatus = this.sendStatus().finally(() => (this.sendingStatus = undefined));
  }

  private async sendStatus(): Promise<void> {
    const { ledger, client, logger } = this.opts;
    const counters = ledger.counterSnapshot();
    const diskGib = this.diskUsedGib();
    const body = this.status(counters, diskGib);
    // Cleared now so that events during the send ask for another report; restored on failure.
    ledger.updatePending = false;
    const ok = await client.post('/worker_status/', dumps(body as unknown as PyJson), { signal: this.stopper.signal });
    if (ok) {
      ledger.commitCounters(counters);
      this.lastDiskGib = diskGib;
      this.lastSuccessMs = Date.now();
      logger.debug({ cur_load: body.cur_load.value, max_perf: body.max_perf.value }, 'vast: worker_status sent');
    } else {
      ledger.updatePending = true;
      if (!this.stopper.signal.aborted)
        logger.warn('vast: worker_status could not be delivered to any REPORT_ADDR; counters kept');
    }
  }

  private deleteTick(): void {
    if (this.sendingDeletes) return;
    const { ledger, client, logger, skipDeleteAddrs } = this.opts;
    if (ledger.droppedFinished > this.droppedLogged) {
      logger.warn(
        { dropped: ledger.droppedFinished - this.droppedLogged },
        'vast: /delete_requests/ items dropped undelivered (too many waiting for the autoscaler)',
      );
      this.droppedLogged = ledger.droppedFinished;
    }
    const items = ledger.pendingFinished();
    if (items.length === 0) return;
    // No address to send them to: they would wait forever.
    if (client.addrs.every((addr) => skipDeleteAddrs.includes(addr))) {
      ledger.ackFinished(items.length);
      return;
    }
    this.sendingDeletes = this.sendDeletes(items).finally(() => (this.sendingDeletes = undefined));
  }

  private async sendDeletes(items: FinishedItem[]): Promise<void> {
    const { ledger, client } = this.opts;
    const body = {
      worker_id: this.opts.id,
      mtoken: this.opts.mtoken,
      requests: items.map((item) => ({
        request_idx: item.request_idx,
        success: item.success,
        status: item.status,
        entered_queue_at: new PyFloat(item.entered_queue_at),
        work_started_at: item.work_started_at === null ? null : new PyFloat(item.work_started_at),
        work_completed_at: item.work_completed_at === null ? null : new PyFloat(item.work_completed_at),
      })),
    };
    const ok = await client.post('/delete_requests/', dumps(body), {
      signal: this.stopper.signal,
      skip: (addr) => this.opts.skipDeleteAddrs.includes(addr),
    });
    if (ok) ledger.ackFinished(items.length);
  }

  private diskUsedGib(): number {
    try {
      const s = fs.statfsSync(this.opts.diskPath);
      return ((s.blocks - s.bfree) * s.bsize) / GIB;
    } catch {
      return this.lastDiskGib;
    }
  }
}

/**
 * Before the server runs (a required variable is missing): PyWorker's bootstrap failure report
 * `{id, mtoken, version, error_msg, url}` to every address.
 */
export async function sendBootstrapFailure(
  client: AutoscalerClient,
  fields: { id: number; mtoken: string; error_msg: string; url: string },
): Promise<boolean> {
  const body = { id: fields.id, mtoken: fields.mtoken, version: PYWORKER_VERSION, error_msg: fields.error_msg, url: fields.url };
  return client.postAll('/worker_status/', dumps(body));
}
