// After load, ComfyUI must stay usable (PyWorker's health loop, reference §8; for a worker that
// talks to ComfyUI directly: /system_stats answering and the websocket open). An outage shorter
// than COMFY_READY_TIMEOUT_S (ComfyUI restarting) heals; a longer one becomes the permanent
// error_msg, so the autoscaler replaces the worker instead of routing requests to a dead one.
// A CUDA fault leaves the GPU broken until the machine restarts: it becomes the error at once,
// checked after every finished job and at every tick.
import type { BackendStatus, ConnectionChange } from '../../jobs/backend';
import type { JobEventSource } from '../../jobs/events';
import type { Logger } from '../../observability/logger';
import type { VastState } from './state';

export interface WatchdogOptions {
  backend: BackendStatus;
  events: JobEventSource;
  /** Woken when the websocket is down, so it reconnects even with no job to run. */
  state: VastState;
  logger: Logger;
  /** How long ComfyUI may stay unreachable after load (COMFY_READY_TIMEOUT_S). */
  outageLimitMs: number;
  /** Between checks; default a quarter of the limit, within 0.25 to 10 s. */
  tickMs?: number;
}

export class ComfyWatchdog {
  private readonly opts: WatchdogOptions;
  private readonly tickMs: number;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private stopped = false;
  /** When a check first found ComfyUI unusable (undefined while it is fine). */
  private outageSince: number | undefined;
  /** The session's own words for its last 'down'. */
  private downReason: string | undefined;
  private readonly onFinished = () => this.checkGpu();
  private readonly onConnection = (change: ConnectionChange) => {
    if (change.state === 'reconnected') {
      this.downReason = undefined;
      return;
    }
    this.downReason = change.reason;
    if (this.timer !== undefined) void this.tick();
  };
  private unsubscribe: (() => void) | undefined;

  /** Watches for a CUDA fault from now on (the benchmark's jobs too); start() adds the health loop. */
  constructor(opts: WatchdogOptions) {
    this.opts = opts;
    this.tickMs = opts.tickMs ?? Math.min(10_000, Math.max(250, opts.outageLimitMs / 4));
    opts.events.on('finished', this.onFinished);
    this.unsubscribe = opts.backend.onConnection(this.onConnection);
  }

  /** The health loop, once the worker is loaded. */
  start(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.opts.events.off('finished', this.onFinished);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** True when the GPU is faulty (and the error is now set). */
  private checkGpu(): boolean {
    const fault = this.opts.backend.gpuFault;
    if (fault === undefined) return false;
    this.fail(`GPU fault (CUDA), the machine needs a restart: ${fault}`);
    return true;
  }

  private fail(message: string): void {
    if (this.opts.state.errorMsg === '') this.opts.state.fail(message);
    // An error is permanent: nothing left to watch.
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    const { backend, state, logger } = this.opts;
    if (this.checking || this.stopped || state.errorMsg !== '') return;
    this.checking = true;
    try {
      if (this.checkGpu()) return;
      const health = await backend.health();
      if (this.stopped || state.errorMsg !== '' || this.checkGpu()) return;
      const problem = !health.reachable
        ? `/system_stats: ${health.error ?? 'no answer'}`
        : health.websocket !== 'open'
          ? `websocket ${health.websocket}${this.downReason !== undefined ? ` (${this.downReason})` : ''}`
          : undefined;
      const now = Date.now();
      if (problem === undefined) {
        if (this.outageSince !== undefined)
          logger.info({ downS: (now - this.outageSince) / 1000 }, 'vast: ComfyUI is back after an outage');
        this.outageSince = undefined;
        return;
      }
      if (this.outageSince === undefined) {
        this.outageSince = now;
        logger.warn(
          { problem, limitS: this.opts.outageLimitMs / 1000 },
          'vast: ComfyUI unusable after load; an error if it lasts longer than COMFY_READY_TIMEOUT_S',
        );
      }
      const downMs = now - this.outageSince;
      if (downMs > this.opts.outageLimitMs) {
        this.fail(`ComfyUI unreachable for ${Math.round(downMs / 1000)} s after load: ${problem}`);
      }
    } finally {
      this.checking = false;
    }
  }
}
