// A job is a validated request, door-agnostic: what to run, with which inputs, and how the
// outputs should leave. Doors build JobSpecs from their wire format and read JobRecords back.
import type { InputImage } from '../comfy/inputs';
import type { Workflow } from '../comfy/types';
import type { JobOutput, KeptFile, S3Credentials, S3Target } from '../delivery/types';
import type { ErrorBody } from '../errors';
import type { WebhookTarget } from '../webhooks/types';
import { z } from 'zod';

export type { JobOutput, S3Target, WebhookTarget };

export type JobStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

/**
 * The door that accepted a job (http, vast, runpod, benchmark). Opaque here: jobs/ never
 * branches on it, so adding a door does not touch this folder.
 */
export type JobSource = string;
/** The contract a job is answered in (see contracts/): opaque here, like the source. */
export type ContractName = string;

export interface JobSpec {
  workflow: Workflow;
  images: InputImage[];
  includeTempOutputs: boolean;
  /** Return outputs inline as base64 even when S3 is configured. */
  forceBase64: boolean;
  /** Put ComfyUI's history entry into the result (wrapper: comfyui_response). */
  includeComfyResponse: boolean;
  /** Complete with the outputs that were delivered even if some could not be. */
  allowPartial: boolean;
  /** List the outputs but fetch and deliver none (the startup benchmark only needs timings). */
  skipDelivery?: boolean;
  webhook?: WebhookTarget;
  s3?: S3Target;
  /** Door-specific values the door wants back with the result (e.g. Vast's request_idx). */
  meta?: Record<string, unknown>;
}

/** Credentials that came with a request: encrypted at rest, purged when the job ends. */
export interface JobSecrets extends S3Credentials {
  comfyOrgApiKey?: string;
  webhookSecret?: string;
}

export interface NewJob {
  id: string;
  source: JobSource;
  contract: ContractName;
  /** A caller waits on the connection for the answer (generate/sync, runsync). */
  sync: boolean;
  spec: JobSpec;
  secrets?: JobSecrets;
}

export interface JobTimings {
  queued_at_ms: number;
  started_at_ms: number;
  /** From submission to the start of its run (waiting behind other jobs, or for ComfyUI). */
  queue_ms: number;
  /** The part of queue_ms spent waiting for ComfyUI to become reachable (only when it did). */
  comfy_wait_ms?: number;
  preprocess_ms: number;
  generation_ms: number;
  postprocess_ms: number;
  completed_at_ms: number;
  total_ms: number;
}

export interface JobResult {
  outputs: JobOutput[];
  warnings: string[];
  timings: JobTimings;
  comfyResponse?: unknown;
}

/** JobProgress as the API description shows it. */
export const jobProgressSchema = z.object({
  percentage: z.number(),
  completed_nodes: z.number().int(),
  total_nodes: z.number().int(),
  current_node: z.string().nullable(),
  current_node_progress: z.object({ value: z.number(), max: z.number() }).nullable(),
});

export interface JobProgress {
  percentage: number;
  completed_nodes: number;
  total_nodes: number;
  current_node: string | null;
  current_node_progress: { value: number; max: number } | null;
}

export interface JobRecord {
  id: string;
  seq: number;
  source: JobSource;
  contract: ContractName;
  sync: boolean;
  status: JobStatus;
  spec: JobSpec;
  promptId: string | null;
  /** The ComfyUI backend (base URL) its prompt was handed to; null until then. */
  backend: string | null;
  /** How many times the job was submitted to ComfyUI. */
  attempts: number;
  result: JobResult | null;
  error: ErrorBody | null;
  /** Epoch seconds. */
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
  /**
   * A shared store: a cancel (or stuck reset) was sent while it ran, with this reason. Whoever
   * takes it over from a worker that died ends it so rather than running or reconciling it.
   */
  cancelRequested?: ErrorBody;
  /**
   * Its inline outputs' files (by `blob` index) as the runner wrote them, small ones with their
   * bytes, on the final record the runner hands to waiting callers: their answer is built from
   * these, without the store (see Runner.complete). A missing entry is looked up in the store (a
   * shared store moves files away as it records them: only their bytes are kept). Never stored: a
   * record read from a store has none.
   */
  kept?: ReadonlyArray<KeptFile | undefined>;
}

/** A job as a store has just accepted it: built, not read back (admission is on the hot path). */
export function pendingRecord(job: NewJob, seq: number, createdAt: number, images: JobSpec['images']): JobRecord {
  return {
    id: job.id,
    seq,
    source: job.source,
    contract: job.contract,
    sync: job.sync,
    status: 'pending',
    spec: { ...job.spec, images },
    promptId: null,
    backend: null,
    attempts: 0,
    result: null,
    error: null,
    createdAt,
    startedAt: null,
    completedAt: null,
  };
}
