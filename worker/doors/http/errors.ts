// The one place where errors become HTTP responses for the HTTP door:
// `{"error": {code, message, status, field?, details?}}` with the error's status and headers.
// Client mistakes keep their 4xx; anything unexpected is a 500 without internals (and is logged).
import type { ErrorRequestHandler } from 'express';
import { toWorkerError } from '../../errors';
import type { Logger } from '../../observability/logger';
import { bodyReadError, sendError } from '../errors';

export function errorHandler(logger: Logger, maxBodyBytes: number): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const error = bodyReadError(err, maxBodyBytes) ?? toWorkerError(err);
    if (error.code === 'internal') logger.error({ err, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, error);
  };
}
