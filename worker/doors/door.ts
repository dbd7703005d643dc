// What a front door is and what it may use. A door translates its wire format into jobs of a
// contract and back; it reaches the rest of the worker only through this context: the job facade,
// job events to observe, on-demand upkeep, the backend's readiness, what contracts need to parse
// requests, and the metrics text. Never the store, never the ComfyUI client.
import type { Config } from '../config';
import type { ContractContext } from '../contracts/context';
import type { BackendStatus } from '../jobs/backend';
import type { JobEventSource } from '../jobs/events';
import type { JobQueue } from '../jobs/queue';
import type { Upkeep } from '../jobs/upkeep';
import type { Logger } from '../observability/logger';

export interface DoorContext {
  config: Config;
  logger: Logger;
  jobs: JobQueue;
  events: JobEventSource;
  upkeep: Pick<Upkeep, 'cleanup' | 'resetStuck'>;
  backend: BackendStatus;
  contracts: ContractContext;
  metrics: {
    render(): Promise<{ contentType: string; body: string }>;
    /** Where the benchmark score is read from at scrape time (the Vast door's benchmark). */
    benchmarkScore(read: () => number | undefined): void;
  };
}

export interface DoorHandle {
  /** Where the door can be reached, e.g. http://127.0.0.1:8000 */
  url: string;
  /**
   * Called first when the worker stops, before the running jobs get their grace period: a door
   * with its own way of ending the job in hand (RunPod's job loop) does it here.
   */
  drain?(): Promise<void>;
  /** Called once the jobs have ended or been left for recovery, and their callers answered. */
  stop(): Promise<void>;
}

export type StartDoor = (ctx: DoorContext) => Promise<DoorHandle>;
