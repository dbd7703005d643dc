// Becoming "loaded" for the autoscaler. Two things happen side by side at startup:
//   - the autoscaler's public key is fetched (unless signatures are off);
//   - the stack is checked end to end, then benchmarked: MODEL_LOG's on-load line (when a log is
//     watched), ComfyUI answering /system_stats and its websocket (retried through startup's
//     connection-refused phase, up to COMFY_READY_TIMEOUT_S), /object_info having every node
//     class the benchmark workflow uses, and the benchmark itself (or its cached result).
//     The runner is the one that connects to ComfyUI; readiness waits for its connection rather
//     than racing it with a second one (two websockets, two client ids).
// Loaded = both done with no error; the first report with max_perf > 0 and loadtime > 0 then
// tells the autoscaler the worker is ready. Any failure becomes the permanent error_msg.
import type { Config } from '../../config';
import type { BackendStatus } from '../../jobs/backend';
import type { Logger } from '../../observability/logger';
import type { StartupBenchmark } from '../../../benchmark';
import { PUBKEY_ERROR, type AutoscalerClient } from './autoscaler';
import { ModelLogError, waitForModelLog } from './model-log';
import { sleep } from '../../util/time';
import type { SignatureVerifier } from './signature';
import type { VastState } from './state';

/** How often readiness looks whether the runner has connected to ComfyUI. */
const COMFY_READY_POLL_MS = 100;

export interface ReadinessDeps {
  backend: BackendStatus;
  logger: Logger;
  readyTimeoutMs: number;
  modelLog: Config['vast']['modelLog'];
  state: VastState;
  verifier: SignatureVerifier;
  autoscaler: AutoscalerClient;
  /** Undefined when the benchmark workflow could not be loaded (the error is already set). */
  benchmark: StartupBenchmark | undefined;
  /** Node classes the benchmark workflow uses. */
  requiredClasses: string[];
  signal: AbortSignal;
}

/**
 * Waits until ComfyUI is ready as the runner sees it (the runner probes /system_stats and opens
 * the websocket, with backoff); after `timeoutMs` rejects saying what is still missing.
 */
export async function waitForComfy(comfy: BackendStatus, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const started = Date.now();
  while (!comfy.isReady) {
    const waited = Date.now() - started;
    if (waited >= timeoutMs) {
      const health = await comfy.health();
      const reason = health.error !== undefined ? `/system_stats: ${health.error}` : `websocket ${health.websocket}`;
      throw new Error(`ComfyUI at ${comfy.baseUrl} was not ready after ${Math.round(waited / 1000)} s: ${reason}`);
    }
    await sleep(Math.min(COMFY_READY_POLL_MS, timeoutMs - waited), signal);
  }
}

export async function becomeReady(deps: ReadinessDeps): Promise<void> {
  const { state, signal } = deps;
  const keyLoaded =
    deps.verifier.scheme === 'off'
      ? Promise.resolve(true)
      : deps.autoscaler.fetchPublicKey(signal).then(
          (key) => {
            deps.verifier.setKey(key);
            return true;
          },
          () => {
            if (!signal.aborted) state.fail(PUBKEY_ERROR);
            return false;
          },
        );
  const maxPerf = prepareStack(deps).catch((err: unknown) => {
    if (!signal.aborted) state.fail((err as Error).message);
    return undefined;
  });
  const [key, perf] = await Promise.all([keyLoaded, maxPerf]);
  if (key && perf !== undefined && state.errorMsg === '' && !signal.aborted) state.markLoaded(perf);
}

async function prepareStack(deps: ReadinessDeps): Promise<number> {
  const { backend, logger, signal } = deps;
  if (deps.modelLog) {
    try {
      await waitForModelLog({ ...deps.modelLog, logger, timeoutMs: deps.readyTimeoutMs }, signal);
    } catch (err) {
      if (err instanceof ModelLogError)
        logger.error({ path: deps.modelLog.path, token: err.message }, 'vast: MODEL_LOG error line');
      throw err;
    }
  }
  await waitForComfy(backend, deps.readyTimeoutMs, signal);
  const missing = await backend.missingNodeClasses(deps.requiredClasses, signal);
  if (missing.length > 0) {
    throw new Error(`ComfyUI has no node class ${missing.join(', ')} (needed by the benchmark workflow; check custom nodes)`);
  }
  if (!deps.benchmark) throw new Error('no benchmark workflow');
  return deps.benchmark.run(signal);
}
