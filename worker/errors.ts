// One error type for the whole worker. It carries the HTTP status a client should see, a stable
// machine-readable code, and optionally the request field at fault and structured details
// (for example ComfyUI's node_errors). Doors turn it into their wire format in one place each.
import { z } from 'zod';

export type ErrorCode =
  | 'invalid_request' // the client's request is malformed or inconsistent
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'queue_full'
  | 'store_unavailable' // the job store (Redis) cannot be reached
  | 'comfy_unavailable' // ComfyUI is not (yet) reachable
  | 'comfy_validation' // ComfyUI rejected the prompt (400 from /prompt)
  | 'input_image' // an input image could not be decoded, fetched or uploaded
  | 'execution_error' // a node raised while running
  | 'comfy_connection' // ComfyUI went away or answered garbage mid-job
  | 'prompt_lost' // ComfyUI no longer knows the prompt (it restarted)
  | 'worker_lost' // the worker running it died after sending its prompt; not resubmitted (shared queue)
  | 'timeout' // the job's deadline passed
  | 'cancelled'
  | 'client_disconnected'
  | 'worker_stopping' // the worker is shutting down (SIGTERM/SIGINT); retry elsewhere
  | 'output_error' // outputs could not be fetched or delivered
  | 'internal';

/** ErrorBody as the API description shows it. */
export const errorBodySchema = z.object({
  code: z.string().meta({ description: 'Stable machine-readable code, e.g. invalid_request, queue_full, comfy_validation' }),
  message: z.string(),
  status: z.number().int(),
  field: z.string().optional().meta({ description: 'The request field at fault' }),
  details: z.unknown().optional().meta({ description: "e.g. ComfyUI's node_errors" }),
});

/** The JSON shape of an error, as stored with a job and as sent to clients. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  status: number;
  field?: string;
  details?: unknown;
}

export class WorkerError extends Error {
  override readonly name = 'WorkerError';
  readonly status: number;
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly details: unknown;
  /** Extra response headers, e.g. Retry-After. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    extra: { field?: string; details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.status = status;
    this.code = code;
    this.field = extra.field;
    this.details = extra.details;
    this.headers = extra.headers ?? {};
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, status: this.status };
    if (this.field !== undefined) body.field = this.field;
    if (this.details !== undefined) body.details = this.details;
    return body;
  }

  static fromBody(body: ErrorBody): WorkerError {
    return new WorkerError(body.status, body.code, body.message, { field: body.field, details: body.details });
  }
}

/** 400 naming the field and the problem: `input.images[0].image: not valid base64`. */
export function invalidField(field: string, problem: string): WorkerError {
  return new WorkerError(400, 'invalid_request', `${field}: ${problem}`, { field });
}

export function notFound(message: string): WorkerError {
  return new WorkerError(404, 'not_found', message);
}

/**
 * Anything thrown that is not a WorkerError is a bug or an unexpected failure: the client gets a
 * generic 500 without internals (the caller logs the original).
 */
export function toWorkerError(err: unknown): WorkerError {
  if (err instanceof WorkerError) return err;
  return new WorkerError(500, 'internal', 'Internal error', { cause: err });
}

/**
 * A setting that cannot be used as given: a variable's value is invalid, or what it names cannot
 * be used (SQLITE_DB_PATH unwritable, API_PORT taken). The message names the variable; the
 * worker exits with status 2.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
