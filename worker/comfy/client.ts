// The ComfyUI client: HTTP routes, the websocket session, readiness, and running one prompt to
// its end. It knows nothing of jobs, doors or delivery.
import { WorkerError } from '../errors';
import { isObject } from '../util/objects';
import { sleep } from '../util/time';
import type { Logger } from '../observability/logger';
import { classifyOutcome } from './history';
import { ComfyHttp, type SubmitResponse } from './http';
import { ComfySession, type SessionState } from './session';
import type { ComfyEvent, HistoryEntry, Workflow } from './types';
import { PromptWatch, type WatchDeps } from './watch';

/** After an interrupt, how long to wait for ComfyUI to let go of the prompt before moving on. */
const RELEASE_GRACE_MS = 10_000;
const PROBE_TIMEOUT_MS = 5_000;
const HEALTH_PROBE_TIMEOUT_MS = 2_000;
/** Looking for a prompt whose submission answer was lost: this many looks, this far apart. */
const LOOKUP_ATTEMPTS = 3;
const LOOKUP_DELAY_MS = 1_000;

export interface ComfyClientOptions {
  baseUrl: string;
  clientId: string;
  reconnectAttempts: number;
  reconnectDelayMs: number;
  websocketTrace: boolean;
  historyPollMs: number;
  logger: Logger;
}

export interface PromptRequest {
  promptId: string;
  workflow: Workflow;
  extraData: Record<string, unknown>;
  /** Aborted on deadline or cancel; its reason (a WorkerError) is what the run rejects with. */
  signal: AbortSignal;
  onEvent?: (event: ComfyEvent) => void;
  /** ComfyUI has the prompt in its queue (its /prompt answer came, or it was found after a lost answer). */
  onQueued?: () => void;
}

export interface ComfyHealth {
  healthy: boolean;
  reachable: boolean;
  websocket: SessionState;
  error?: string;
  /** Set after a CUDA fault: the GPU needs a restart. */
  gpu_fault?: string;
}

/** torch's OutOfMemoryError (type), or its message. */
const OUT_OF_MEMORY = /OutOfMemoryError|out of memory/i;
/**
 * Faults that leave the CUDA context broken until the process restarts. Other CUDA errors (a bad
 * launch configuration from one odd request) are that job's failure only.
 */
const CUDA_FAULT =
  /illegal memory access|device-side assert|unspecified launch failure|misaligned address|uncorrectable ECC error|CUDA error: an illegal instruction/i;

export interface FinishedPrompt {
  entry: HistoryEntry;
  warnings: string[];
}

export class ComfyClient {
  readonly http: ComfyHttp;
  readonly session: ComfySession;
  private readonly logger: Logger;
  private readonly watchDeps: WatchDeps;
  private systemStatsValue: Record<string, unknown> | undefined;
  private gpuFaultValue: string | undefined;

  constructor(opts: ComfyClientOptions) {
    this.logger = opts.logger;
    this.http = new ComfyHttp(opts.baseUrl);
    this.session = new ComfySession({
      baseUrl: opts.baseUrl,
      clientId: opts.clientId,
      reconnectAttempts: opts.reconnectAttempts,
      reconnectDelayMs: opts.reconnectDelayMs,
      trace: opts.websocketTrace,
      logger: opts.logger,
    });
    this.watchDeps = { http: this.http, session: this.session, historyPollMs: opts.historyPollMs, logger: opts.logger };
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  /**
   * Ready = /system_stats answers and the websocket is open (a job taken earlier could fail), and
   * the GPU has not faulted.
   */
  get isReady(): boolean {
    return this.session.isOpen && this.gpuFaultValue === undefined;
  }

  /** The last /system_stats answer (GPU name, versions), if ComfyUI has been reached. */
  get systemStats(): Record<string, unknown> | undefined {
    return this.systemStatsValue;
  }

  /**
   * A live health probe for /health routes: /system_stats answering within 2 s, and the state of
   * the websocket. Never throws.
   */
  async health(): Promise<ComfyHealth> {
    const health: ComfyHealth = { healthy: false, reachable: true, websocket: this.session.state };
    try {
      await this.http.systemStats(HEALTH_PROBE_TIMEOUT_MS);
    } catch (err) {
      health.reachable = false;
      health.error = (err as Error).message;
    }
    if (this.gpuFaultValue !== undefined) health.gpu_fault = this.gpuFaultValue;
    health.healthy = health.reachable && health.websocket === 'open' && health.gpu_fault === undefined;
    return health;
  }

  /**
   * Waits for ComfyUI with backoff (0.25 s doubling to 2 s) until /system_stats answers and the
   * websocket opens, or the deadline passes. Logs what it is waiting for.
   */
  async waitUntilReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.isReady) return;
    const started = Date.now();
    let delay = 250;
    let lastLog = 0;
    for (;;) {
      const reason = await this.probe();
      if (reason === undefined) {
        this.logger.info({ url: this.baseUrl, waitedMs: Date.now() - started }, 'ComfyUI is ready');
        return;
      }
      const waited = Date.now() - started;
      if (waited >= timeoutMs) {
        throw new WorkerError(
          503,
          'comfy_unavailable',
          `ComfyUI at ${this.baseUrl} was not ready after ${Math.round(waited / 1000)} s: ${reason}`,
        );
      }
      if (lastLog === 0 || Date.now() - lastLog >= 10_000) {
        lastLog = Date.now();
        this.logger.info({ url: this.baseUrl, waitedS: Math.round(waited / 1000), reason }, 'waiting for ComfyUI');
      }
      await sleep(Math.min(delay, timeoutMs - waited), signal);
      delay = Math.min(delay * 2, 2_000);
    }
  }

  /** One readiness probe; undefined when ready, else what is missing. */
  private async probe(): Promise<string | undefined> {
    try {
      this.systemStatsValue = await this.http.systemStats(PROBE_TIMEOUT_MS);
    } catch (err) {
      return `/system_stats: ${(err as Error).message}`;
    }
    try {
      await this.session.connect();
      return undefined;
    } catch (err) {
      return `websocket /ws: ${(err as Error).message}`;
    }
  }

  /**
   * Submits a prompt and waits for its end. Resolves with the history entry of a successful run;
   * rejects with a WorkerError for a rejected prompt, an execution error, an interrupt, a lost
   * ComfyUI, or the signal's reason (deadline, cancel) after interrupting the prompt.
   */
  async runPrompt(req: PromptRequest): Promise<FinishedPrompt> {
    const watch = new PromptWatch(this.watchDeps, req.promptId, req.onEvent);
    let submitted: SubmitResponse;
    try {
      submitted = await this.http.submit(
        { promptId: req.promptId, clientId: this.session.clientId, workflow: req.workflow, extraData: req.extraData },
        req.signal,
      );
    } catch (err) {
      // A lost answer is not a lost prompt: ComfyUI may have queued it before the connection
      // failed. Follow it if it is there; submitting again could run the work twice.
      const rejected = err instanceof WorkerError && err.status < 500;
      if (!req.signal.aborted && !rejected && (await this.knows(req.promptId, req.signal))) {
        this.logger.warn(
          { promptId: req.promptId, err: (err as Error).message },
          'POST /prompt answer lost, but ComfyUI has the prompt',
        );
        submitted = { prompt_id: req.promptId, number: -1, node_errors: {} };
      } else {
        watch.stop();
        // Not found (or aborted): make sure a late arrival of the prompt cannot run beside the next job.
        if (!rejected) await this.cancelPrompt(req.promptId);
        throw err;
      }
    }
    req.onQueued?.();
    const warnings: string[] = [];
    if (Object.keys(submitted.node_errors).length > 0) {
      // A 200 with node_errors: ComfyUI silently dropped the outputs that failed validation.
      warnings.push(`ComfyUI skipped outputs that failed validation: ${JSON.stringify(submitted.node_errors)}`);
    }
    return { entry: await this.finish(watch, req.promptId, req.signal, false), warnings };
  }

  /** Follows a prompt submitted earlier (by a previous worker process) to its end. */
  async resumePrompt(promptId: string, signal: AbortSignal, onEvent?: (event: ComfyEvent) => void): Promise<HistoryEntry> {
    return this.finish(new PromptWatch(this.watchDeps, promptId, onEvent), promptId, signal, true);
  }

  private async finish(watch: PromptWatch, promptId: string, signal: AbortSignal, checkNow: boolean): Promise<HistoryEntry> {
    let entry: HistoryEntry;
    try {
      entry = await watch.done(signal, { checkNow });
    } catch (err) {
      if (signal.aborted) await this.cancelPrompt(promptId);
      throw err;
    }
    const outcome = classifyOutcome(entry);
    if (outcome.kind === 'success') return entry;
    if (outcome.kind === 'error') {
      this.afterExecutionError(outcome.error);
      throw outcome.error;
    }
    // Interrupted, but not by us (our own cancel would have aborted the signal first).
    if (signal.aborted) throw signal.reason;
    throw new WorkerError(
      500,
      'execution_error',
      `ComfyUI interrupted the prompt at node ${outcome.nodeId ?? '?'} (not at this worker's request)`,
    );
  }

  /**
   * Whether ComfyUI has the prompt queued, running or in its history. Asked a few times: a slow
   * validation may put the prompt in the queue after the answer was lost. False if ComfyUI
   * cannot be asked.
   */
  private async knows(promptId: string, signal: AbortSignal): Promise<boolean> {
    for (let attempt = 0; attempt < LOOKUP_ATTEMPTS; attempt++) {
      try {
        const queue = await this.http.queue(signal);
        if (queue.running.includes(promptId) || queue.pending.includes(promptId)) return true;
        if ((await this.http.history(promptId, signal)) !== undefined) return true;
        await sleep(LOOKUP_DELAY_MS, signal);
      } catch {
        return false;
      }
    }
    return false;
  }

  /**
   * Out of memory: ask ComfyUI to unload models and free VRAM before the next prompt, and keep
   * serving. A CUDA fault (illegal memory access, device-side assert) does not heal: the GPU is
   * marked faulty so /health says so and the platform can replace the machine.
   */
  private afterExecutionError(error: WorkerError): void {
    const details = isObject(error.details) ? error.details : {};
    const text = `${String(details.exception_type ?? '')} ${String(details.exception_message ?? '')}`;
    if (CUDA_FAULT.test(text)) {
      this.gpuFaultValue ??= error.message;
      this.logger.error({ reason: error.message }, 'CUDA fault: the GPU needs a restart; /health reports unhealthy');
    } else if (OUT_OF_MEMORY.test(text)) {
      // Not awaited: ComfyUI acts on it between prompts, and the job's answer need not wait.
      this.logger.warn('out of memory: asking ComfyUI to free memory');
      void this.http.free().catch((err: Error) => this.logger.warn({ err: err.message }, 'POST /free failed'));
    }
  }

  /** Why the GPU cannot be trusted any more (a CUDA fault), if it cannot. */
  get gpuFault(): string | undefined {
    return this.gpuFaultValue;
  }

  /**
   * Takes our prompt out of ComfyUI: dequeued if pending, interrupted if running — by prompt_id
   * only, never a bare /interrupt that would stop someone else's prompt. Does not wait.
   */
  async cancelPrompt(promptId: string): Promise<void> {
    try {
      await this.http.deleteFromQueue(promptId);
      await this.http.interrupt(promptId);
    } catch (err) {
      this.logger.warn({ promptId, err: (err as Error).message }, 'could not cancel prompt on ComfyUI');
    }
  }

  /**
   * Waits (at most `graceMs`) until ComfyUI has let go of a cancelled prompt. An interrupt only
   * takes effect at a node boundary, so the next prompt would otherwise queue behind it.
   */
  async waitUntilReleased(promptId: string, graceMs = RELEASE_GRACE_MS): Promise<void> {
    try {
      await new PromptWatch(this.watchDeps, promptId).done(AbortSignal.timeout(graceMs), { checkNow: true });
    } catch {
      // Gone from the queue without history (dequeued), ComfyUI down, or the grace ran out:
      // in every case there is nothing more to wait for.
    }
  }

  close(): void {
    this.session.close();
  }
}
