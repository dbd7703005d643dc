// What doors and the benchmark may know of the ComfyUI backend that runs their jobs: whether it
// can take work, why not, and what it has (GPU, node classes). Never its API: doors do not talk to
// ComfyUI, the runner does. Built over the ComfyUI client by backendStatus().
import type { ComfyClient, ComfyHealth } from '../comfy/client';

export type BackendHealth = ComfyHealth;

export type ConnectionChange = { state: 'down'; reason: string } | { state: 'reconnected' };

export interface BackendStatus {
  readonly baseUrl: string;
  /** The runner can start a job now (connected, no GPU fault). */
  readonly isReady: boolean;
  /** Set after a CUDA fault: the GPU needs a restart. */
  readonly gpuFault: string | undefined;
  /** A live probe; never throws. */
  health(): Promise<BackendHealth>;
  /** /system_stats (GPU name, versions): the last answer, or a fresh one; undefined if unreachable. */
  systemStats(timeoutMs: number): Promise<Record<string, unknown> | undefined>;
  /** The node classes among these that ComfyUI does not know. */
  missingNodeClasses(classes: string[], signal?: AbortSignal): Promise<string[]>;
  /** Told when the websocket gives up reconnecting or is back; returns the unsubscribe. */
  onConnection(listener: (change: ConnectionChange) => void): () => void;
}

export function backendStatus(comfy: ComfyClient): BackendStatus {
  return {
    get baseUrl() {
      return comfy.baseUrl;
    },
    get isReady() {
      return comfy.isReady;
    },
    get gpuFault() {
      return comfy.gpuFault;
    },
    health: () => comfy.health(),
    async systemStats(timeoutMs) {
      if (comfy.systemStats) return comfy.systemStats;
      return comfy.http.systemStats(timeoutMs).catch(() => undefined);
    },
    async missingNodeClasses(classes, signal) {
      const missing: string[] = [];
      for (const name of classes) {
        const info = await comfy.http.objectInfo(name, signal);
        if (!(name in info)) missing.push(name);
      }
      return missing;
    },
    onConnection(listener) {
      const onDown = (reason: string) => listener({ state: 'down', reason });
      const onReconnected = () => listener({ state: 'reconnected' });
      comfy.session.on('down', onDown);
      comfy.session.on('reconnected', onReconnected);
      return () => {
        comfy.session.off('down', onDown);
        comfy.session.off('reconnected', onReconnected);
      };
    },
  };
}
