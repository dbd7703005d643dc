// The worker's standing as the autoscaler sees it: loading, loaded (with its load time) or in a
// permanent error. An error, once set, stays: the autoscaler replaces a worker in error.
import type { Logger } from '../../observability/logger';
import type { LoadLedger } from './ledger';

export class VastState {
  readonly startedAtMs: number;
  private loadedAtMs: number | undefined;
  private error = '';
  private readonly ledger: LoadLedger;
  private readonly logger: Logger;
  private readonly clock: () => number;

  constructor(opts: { ledger: LoadLedger; logger: Logger; clock?: () => number }) {
    this.ledger = opts.ledger;
    this.logger = opts.logger;
    this.clock = opts.clock ?? Date.now;
    this.startedAtMs = this.clock();
  }

  get loaded(): boolean {
    return this.loadedAtMs !== undefined;
  }

  get errorMsg(): string {
    return this.error;
  }

  /** Seconds from start to loaded; 0 before. */
  get loadtimeS(): number {
    return this.loadedAtMs === undefined ? 0 : (this.loadedAtMs - this.startedAtMs) / 1000;
  }

  /** Ready to take traffic: loaded and not in error. */
  get serving(): boolean {
    return this.loaded && this.error === '';
  }

  markLoaded(maxPerf: number): void {
    if (this.loadedAtMs !== undefined) return;
    this.ledger.maxPerf = maxPerf;
    this.loadedAtMs = this.clock();
    this.ledger.updatePending = true;
    this.logger.info({ maxPerf, loadtimeS: this.loadtimeS }, 'vast: worker loaded');
  }

  /** Sets the permanent error (the first one wins) and asks for a report. */
  fail(message: string): void {
    if (this.error !== '') {
      this.logger.error({ error: message, kept: this.error }, 'vast: another error after the permanent one');
      return;
    }
    this.error = message;
    this.ledger.updatePending = true;
    this.logger.error({ error_msg: message }, 'vast: permanent error reported to the autoscaler');
  }
}
