// Error responses shared by the doors: the JSON error body every door's own errors use, and the
// errors of reading a request body (express's body parsers) that a client causes.
import type { Response } from 'express';
import { WorkerError } from '../errors';

/** `{"error": {code, message, status, field?, details?}}` with the error's status and headers. */
export function sendError(res: Response, error: WorkerError): void {
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.status(error.status).json({ error: error.toBody() });
}

/** A body-reading failure the client caused, as a WorkerError naming the body; else undefined. */
export function bodyReadError(err: unknown, maxBodyBytes: number): WorkerError | undefined {
  const type = (err as { type?: unknown }).type;
  if (type === 'entity.parse.failed') {
    return new WorkerError(400, 'invalid_request', `body: malformed JSON (${(err as Error).message})`, { field: 'body' });
  }
  if (type === 'entity.too.large') {
    const mb = Math.round((maxBodyBytes / 1024 / 1024) * 10) / 10;
    return new WorkerError(413, 'payload_too_large', `body: larger than MAX_BODY_MB (${mb} MB)`, { field: 'body' });
  }
  if ((typeof type === 'string' && type.startsWith('encoding.')) || type === 'charset.unsupported') {
    return new WorkerError(415, 'invalid_request', `body: ${(err as Error).message}`, { field: 'body' });
  }
  return undefined;
}
