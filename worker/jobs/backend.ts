// What doors and the benchmark may know of the ComfyUI backends that run their jobs (one per GPU):
// whether they can take work, why not, and what they have (GPU, node classes). Never their API:
// doors do not talk to ComfyUI, the runners do. Built over the ComfyUI clients by backendStatus();
// with several backends the worker serves while any of them can.
import type { ComfyClient, ComfyHealth } from '../comfy/client';

export type BackendHealth = ComfyHealth;

/** One backend's health, for /health and the Vast door. */
export interface BackendReport extends ComfyHealth {
  url: string;
}

export type ConnectionChange = { state: 'down'; reason: string } | { state: 'reconnected' };

export interface BackendStatus {
  readonly baseUrl: string;
  /** The runner can start a job now (connected, no GPU fault). */
  readonly isReady: boolean;
  /** Set after a CUDA fault: the GPU needs a restart. */
  readonly gpuFault: string | undefined;
  /** A live probe of the first backend (all of them: healthy when any is); never throws. */
  health(): Promise<BackendHealth>;
  /** Every backend's live probe, in the configured order. */
  backends(): Promise<BackendReport[]>;
  /** How many backends can take a job now. */
  readonly readyCount: number;
  /** How many backends are configured. */
  readonly count: number;
  /** /system_stats (GPU name, versions): the last answer, or a fresh one; undefined if unreachable. */
  systemStats(timeoutMs: number): Promise<Record<string, unknown> | undefined>;
  /** The node classes among these that ComfyUI does not know. */
  missingNodeClasses(classes: string[], signal?: AbortSignal): Promise<string[]>;
  /** Told when the websocket gives up reconnecting or is back; returns the unsubscribe. */
  onConnection(listener: (change: ConnectionChange) => void): () => void;
}

export function backendStatus(clients: ComfyClient[]): BackendStatus {
  const first = clients[0];
  if (!first) throw new Error('no ComfyUI backend configured');
  const reports = (): Promise<BackendReport[]> =>
    Promise.all(clients.map(async (c) => ({ url: c.baseUrl, ...(await c.health()) })));
  return {
    get baseUrl() {
      return first.baseUrl;
    },
    get isReady() {
      return clients.some((c) => c.isReady);
    },
    count: clients.length,
    get readyCount() {
      return clients.filter((c) => c.isReady).length;
    },
    /** Set when no backend is left without a fault. */
    get gpuFault() {
      const faults = clients.map((c) => c.gpuFault);
      return faults.every((f) => f !== undefined) ? faults[0] : undefined;
    },
    async health() {
      if (clients.length === 1) return first.health();
      const all = await reports();
      const best = all.find((r) => r.healthy) ?? all[0]!;
      const { url: _url, ...health } = best;
      return health;
    },
    backends: reports,
    async systemStats(timeoutMs) {
      const client = clients.find((c) => c.isReady) ?? first;
      if (client.systemStats) return client.systemStats;
      return client.http.systemStats(timeoutMs).catch(() => undefined);
    },
    async missingNodeClasses(classes, signal) {
      // A job may run on any backend: each must have every class.
      const missing = new Set<string>();
      for (const client of clients) {
        for (const name of classes) {
          if (missing.has(name)) continue;
          const info = await client.http.objectInfo(name, signal);
          if (!(name in info)) missing.add(name);
        }
      }
      return [...missing];
    },
    onConnection(listener) {
      const unsubscribes = clients.map((comfy) => {
        const onDown = (reason: string) => listener({ state: 'down', reason });
        const onReconnected = () => listener({ state: 'reconnected' });
        comfy.session.on('down', onDown);
        comfy.session.on('reconnected', onReconnected);
        return () => {
          comfy.session.off('down', onDown);
          comfy.session.off('reconnected', onReconnected);
        };
      });
      return () => unsubscribes.forEach((unsubscribe) => unsubscribe());
    },
  };
}

/**
 * An api-only worker (WORKER_ROLE=api) runs nothing: its jobs wait in the shared queue for the
 * runner workers, so it is ready whatever ComfyUI does, and has no backend of its own to report.
 */
export function queueOnlyStatus(): BackendStatus {
  return {
    baseUrl: '',
    isReady: true,
    gpuFault: undefined,
    count: 0,
    readyCount: 0,
    async health() {
      return { healthy: true, reachable: true, websocket: 'idle' };
    },
    async backends() {
      return [];
    },
    async systemStats() {
      return undefined;
    },
    async missingNodeClasses() {
      return [];
    },
    onConnection() {
      return () => undefined;
    },
  };
}
