// Waits for one prompt to finish. /history is the authority; websocket events only say "look now".
// History is checked when the socket reports the end of the prompt, after every reconnect (events
// may have been lost), and on a slow backstop timer, so a silent socket can never hang a job.
// A prompt that is in neither /queue nor /history is lost (ComfyUI restarted) and fails at once.
import { WorkerError } from '../errors';
import type { Logger } from '../observability/logger';
import type { ComfyHttp } from './http';
import type { ComfySession } from './session';
import type { ComfyEvent, HistoryEntry } from './types';

/** `execution_success` comes before history is written; if `executing null` never follows, look after this. */
const AFTER_SUCCESS_CHECK_MS = 1_000;

export interface WatchDeps {
  http: ComfyHttp;
  session: ComfySession;
  historyPollMs: number;
  logger: Logger;
}

/**
 * Subscribe before submitting (so no event is missed), then call `done()` once the prompt is
 * queued. Always end with `done()` or `stop()`.
 */
export class PromptWatch {
  private readonly deps: WatchDeps;
  private readonly promptId: string;
  private readonly unsubscribe: () => void;
  private ended = false;
  private sawSuccess = false;
  private poke: (() => void) | undefined;

  constructor(deps: WatchDeps, promptId: string, onEvent?: (event: ComfyEvent) => void) {
    this.deps = deps;
    this.promptId = promptId;
    this.unsubscribe = deps.session.subscribe(promptId, (event) => {
      onEvent?.(event);
      const ends =
        (event.type === 'executing' && event.data.node === null) ||
        event.type === 'execution_error' ||
        event.type === 'execution_interrupted';
      if (ends) this.ended = true;
      if (event.type === 'execution_success') this.sawSuccess = true;
      if (ends || event.type === 'execution_success') this.poke?.();
    });
  }

  stop(): void {
    this.unsubscribe();
    this.poke = undefined;
  }

  /** Resolves with the prompt's history entry; rejects when it is lost, ComfyUI is down, or on abort. */
  done(signal: AbortSignal, opts: { checkNow?: boolean } = {}): Promise<HistoryEntry> {
    const { deps, promptId } = this;
    return new Promise<HistoryEntry>((resolve, reject) => {
      let settled = false;
      let checking = false;
      let again: boolean | undefined;
      let successTimer: NodeJS.Timeout | undefined;

      const finish = (err: unknown, entry?: HistoryEntry) => {
        if (settled) return;
        settled = true;
        this.stop();
        clearInterval(backstop);
        clearTimeout(successTimer);
        deps.session.off('reconnected', onReconnected);
        deps.session.off('down', onDown);
        signal.removeEventListener('abort', onAbort);
        if (entry) resolve(entry);
        else reject(err);
      };

      /** One history request at a time; a request made meanwhile runs right after. */
      const check = async (lookForLoss: boolean): Promise<void> => {
        if (settled) return;
        if (checking) {
          again = (again ?? false) || lookForLoss;
          return;
        }
        checking = true;
        try {
          // Queue before history: ComfyUI writes history before it drops a prompt from the
          // queue, so "not queued" followed by "no history" really means gone.
          const queue = lookForLoss ? await deps.http.queue(signal) : undefined;
          const entry = await deps.http.history(promptId, signal);
          if (entry) return finish(undefined, entry);
          if (queue && !queue.running.includes(promptId) && !queue.pending.includes(promptId)) {
            finish(
              new WorkerError(
                502,
                'prompt_lost',
                `ComfyUI no longer knows prompt ${promptId}: it is neither queued nor in history (did ComfyUI restart?)`,
              ),
            );
          }
        } catch (err) {
          // A failed check is no verdict: the websocket session decides whether ComfyUI is gone.
          if (!settled) deps.logger.debug({ promptId, err: (err as Error).message }, 'history check failed');
        } finally {
          checking = false;
          if (again !== undefined && !settled) {
            const next = again;
            again = undefined;
            void check(next);
          }
        }
      };

      this.poke = () => {
        if (this.ended) void check(false);
        else if (this.sawSuccess && successTimer === undefined) {
          successTimer = setTimeout(() => void check(true), AFTER_SUCCESS_CHECK_MS);
        }
      };
      const onReconnected = () => void check(true);
      const onDown = (reason: string) =>
        finish(new WorkerError(502, 'comfy_connection', `Lost connection to ComfyUI while prompt ${promptId} ran: ${reason}`));
      const onAbort = () => finish(signal.reason);
      const backstop = setInterval(() => void check(true), deps.historyPollMs);

      if (signal.aborted) return finish(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      deps.session.on('reconnected', onReconnected);
      deps.session.on('down', onDown);
      if (deps.session.state === 'down') return onDown('the websocket is down');
      if (opts.checkNow) void check(true);
      else this.poke();
    });
  }
}
