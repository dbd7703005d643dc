// Public types of the simulator (re-exported by index.ts).
import type { ObjectInfoEntry } from './schemas';
import type { TimingOption } from './timing';

export type { ObjectInfoEntry };

/** Lets tests add custom node classes (e.g. a VHS_VideoCombine-like node producing `gifs`). */
export interface SimNodeDef {
  /** Same shape as a /object_info entry (input.required/optional, output, output_node, name, ...). */
  schema: ObjectInfoEntry;
  run?: (ctx: {
    inputs: Record<string, unknown>;
    nodeId: string;
    promptId: string;
    writeFile(kind: 'output' | 'temp', subfolder: string, filename: string, bytes: Buffer): void;
  }) => { ui?: Record<string, unknown> } | Promise<{ ui?: Record<string, unknown> }>;
}

export interface SimulatorFaults {
  /** Delay every GET /view answer. */
  viewDelayMs: number;
  /** Send nothing on any websocket (sockets stay open); prompts still run and history is still written. */
  stallWebsocket: boolean;
  /** During the next prompt, after this many websocket messages of that prompt, terminate every
   *  websocket (abruptly); then reset to null. */
  dropWebsocketAfterEvents: number | null;
  /** During the next prompt, after this many websocket messages, crash() the whole server (as if
   *  the process died); then reset to null. */
  dieAfterEvents: number | null;
  /** Refuse websocket upgrades (HTTP still works). */
  rejectWebsocket: boolean;
}

export interface SimulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Folder with input/, output/, temp/; default a fresh mkdtemp folder (removed by close()). */
  dataDir?: string;
  /** Execution time per executed (non-cached) node, optionally per class_type ("*" sets the
   *  default for classes not listed); default 0. */
  nodeDelayMs?: number | Record<string, number>;
  /** KSampler: time per sampler step; default 0. */
  stepDelayMs?: number;
  /** Checkpoint names offered by CheckpointLoaderSimple.ckpt_name (recorded list is empty);
   *  default ['v1-5-pruned-emaonly-fp16.safetensors']. */
  models?: string[];
  /** Adds a private ancillary PNG chunk of this size to each saved image (still a valid PNG) so
   *  tests can make large outputs; default 0. */
  outputPaddingBytes?: number;
  extraNodes?: Record<string, SimNodeDef>;
  faults?: Partial<SimulatorFaults>;
  /** Server latencies: 'instant' (default), 'recorded' (a real ComfyUI's, timing.ts), or figures. */
  timing?: TimingOption;
}

/** One HTTP request as the simulator received it. */
export interface RecordedRequest {
  method: string;
  /** The path without its query. */
  path: string;
  at: number;
  /** POST /interrupt, /queue and /free only: the JSON body (what the caller asked to stop,
   *  delete or free), once read; undefined when it is not JSON. Other bodies are not kept. */
  body?: unknown;
}

export interface Simulator {
  /** http://host:port (stable across crash()/restart()). */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Mutable: tests set fields directly. */
  readonly faults: SimulatorFaults;
  /** Every ACCEPTED POST /prompt (200), in order, kept across crash()/restart(). */
  readonly prompts: Array<{ prompt_id: string; body: unknown; at: number }>;
  /** Every HTTP request received (path without query), kept across crash/restart. */
  readonly requests: RecordedRequest[];
  setNodeDelay(ms: number | Record<string, number>): void;
  /** As if ComfyUI died: destroy every HTTP and websocket connection at once, stop listening, lose
   *  the in-memory queue, history and cache (files on disk stay). */
  crash(): Promise<void>;
  /** Listen again on the same host:port with fresh in-memory state (like a restarted process). */
  restart(): Promise<void>;
  /** Graceful stop; idempotent. */
  close(): Promise<void>;
}
