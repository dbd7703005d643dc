// The one place where the Vast door turns failures into responses. Two kinds exist:
//   - the protocol's own answers (422 envelope, 401, 410, 429) are written by the routes;
//   - everything after admission is "the model's answer" in PyWorker terms: our api-wrapper
//     errors, passed through with their status and the HTTP door's JSON body (400 naming the
//     field, 409, 503 ...). An unexpected exception is PyWorker's 500 with an empty body.
import type { ErrorRequestHandler, Response } from 'express';
import { toWorkerError } from '../../errors';
import type { Logger } from '../../observability/logger';
import { bodyReadError, sendError } from '../errors';

export function sendModelError(res: Response, err: unknown, logger: Logger): void {
  const error = toWorkerError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (error.code === 'internal') {
    logger.error({ err }, 'vast: request failed');
    res.status(500).end();
    return;
  }
  sendError(res, error);
}

/** Body-reading errors and anything a route let through. */
export function vastErrorHandler(logger: Logger, maxBodyBytes: number): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // The raw body is read as text: a client can only send too much, or an unknown encoding.
    const bodyError = bodyReadError(err, maxBodyBytes);
    if (bodyError) {
      res.status(bodyError.status).json({ error: bodyError.message });
      return;
    }
    logger.error({ err, method: req.method, path: req.path }, 'vast: request failed');
    res.status(500).end();
  };
}
