// A job is a validated request, door-agnostic: what to run, with which inputs, and how the
// outputs should leave. Doors build JobSpecs from their wire format and read JobRecords back.
import type { InputImage } from '../comfy/inputs';
import type { Workflow } from '../comfy/types';
import type { ErrorBody } from '../errors';

export type JobStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

/** Which wire format a job arrived in, so its answer can be given in the same one. */
export type Door = 'http' | 'wrapper' | 'vast' | 'runpod' | 'benchmark';

export interface WebhookTarget {
  url: string;
  extraParams: Record<string, unknown>;
  /** false when the request explicitly asked for an unsigned webhook (secret: ""). */
  signed: boolean;
  /** Per-request timeout; WEBHOOK_TIMEOUT_S when absent. */
  timeoutS?: number;
}

/** Per-request S3 settings, without the credentials (those live in JobSecrets). */
export interface S3Target {
  endpointUrl?: string;
  bucketName?: string;
  region?: string;
  prefix?: string;
  /** The request's connect_timeout (s) and connect_attempts, over S3_CONNECT_TIMEOUT / _ATTEMPTS. */
  connectTimeoutS?: number;
  attempts?: number;
}

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
export interface JobSecrets {
  comfyOrgApiKey?: string;
  s3AccessKeyId?: string;
  s3SecretAccessKey?: string;
  webhookSecret?: string;
}

export interface NewJob {
  id: string;
  door: Door;
  /** A caller waits on the connection for the answer (generate/sync, runsync). */
  sync: boolean;
  spec: JobSpec;
  secrets?: JobSecrets;
}

/** One delivered output: a file (inline and/or uploaded) or a value such as text. */
export interface JobOutput {
  node_id: string;
  /** The key ComfyUI listed it under: images, gifs, audio, text, ... */
  output_type: string;
  filename?: string;
  subfolder?: string;
  /** ComfyUI's folder type: output or temp. */
  type?: string;
  mimetype?: string;
  size?: number;
  /** Index into the job's stored file blobs when the bytes are kept for inline delivery. */
  blob?: number;
  url?: string;
  upload_error?: string;
  error?: string;
  value?: unknown;
}

export interface JobTimings {
  queued_at_ms: number;
  started_at_ms: number;
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
  door: Door;
  sync: boolean;
  status: JobStatus;
  spec: JobSpec;
  promptId: string | null;
  /** How many times the job was submitted to ComfyUI. */
  attempts: number;
  result: JobResult | null;
  error: ErrorBody | null;
  /** Epoch seconds. */
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
}
