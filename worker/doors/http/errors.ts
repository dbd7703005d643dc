// The one place where errors become HTTP responses for the HTTP door:
// `{"error": {code, message, status, field?, details?}}` with the error's status and headers.
// Client mistakes keep their 4xx; anything unexpected is a 500 without internals (and is logged).
import type { ErrorRequestHandler, Response } from 'express';
import { WorkerError, toWorkerError } from '../../errors';
import type { Logger } from '../../observability/logger';

export function sendError(res: Response, error: WorkerError): void {
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.status(error.status).json({ error: error.toBody() });
}

/** body-parser's errors carry a `type`; map the ones a client causes. */
function fromBodyParser(err: unknown, maxBodyBytes: number): WorkerError | undefined {
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

export function errorHandler(logger: Logger, maxBodyBytes: number): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const error = fromBodyParser(err, maxBodyBytes) ?? toWorkerError(err);
    if (error.code === 'internal') logger.error({ err, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, error);
  };
}
