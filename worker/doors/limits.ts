// Slow or lying clients: every door's server gets the header, request and keep-alive timeouts and
// the connection cap of ConnectionLimits (Node enforces those), and a body watchdog of our own. A
// request whose body stops arriving for REQUEST_BODY_TIMEOUT_S is answered 408 in the doors' JSON
// error shape and its connection closed, so a client announcing a large Content-Length and then
// sending nothing cannot hold a connection (and a spool file) for minutes.
import http from 'node:http';
import https from 'node:https';
import type { ConnectionLimits } from '../config';

/** Node checks header and request timeouts on this period (its default, 30 s, would blur them). */
const CHECK_INTERVAL_MS = 1000;

/** The options Node's http(s).createServer takes for these limits. */
function serverOptions(limits: ConnectionLimits): http.ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    // A body that keeps trickling in is bounded by this; one that stalls, by the watchdog below.
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(CHECK_INTERVAL_MS, limits.headersTimeoutMs),
  };
}

/** An http (or, with `tls`, https) server for a door's request handler, with the limits applied. */
export function createDoorServer(
  handler: http.RequestListener,
  limits: ConnectionLimits,
  tls?: { cert: Buffer; key: Buffer },
): http.Server {
  const server = tls ? https.createServer({ ...serverOptions(limits), ...tls }) : http.createServer(serverOptions(limits));
  server.maxConnections = limits.maxConnections;
  server.on('request', handler);
  // After the handler (which starts its read asynchronously): the body's bytes arrive later anyway.
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => watchBody(req, res, limits.bodyTimeoutMs));
  return server;
}

/**
 * Answers 408 and closes the connection when a request's body makes no progress for `timeoutMs`.
 * Progress is the socket's byte count, so the watchdog never reads the body itself (the handler
 * does, at its own pace); a handler that pauses reading keeps the socket's bytes coming in up to
 * its buffer, which is far less than any timeout here.
 */
function watchBody(req: http.IncomingMessage, res: http.ServerResponse, timeoutMs: number): void {
  if (req.complete || !hasBody(req)) return;
  const socket = req.socket;
  let seen = socket.bytesRead;
  let idleSince = Date.now();
  const period = Math.max(50, Math.min(1000, timeoutMs / 4));
  const timer = setInterval(() => {
    if (req.complete || socket.destroyed) return stop();
    if (socket.bytesRead !== seen) {
      seen = socket.bytesRead;
      idleSince = Date.now();
      return;
    }
    if (Date.now() - idleSince < timeoutMs) return;
    stop();
    const seconds = Math.round(timeoutMs / 100) / 10;
    if (res.headersSent) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({
      error: {
        code: 'request_timeout',
        message: `body: no data received for ${seconds} s (REQUEST_BODY_TIMEOUT_S); the request was dropped`,
        status: 408,
        field: 'body',
      },
    });
    res.shouldKeepAlive = false;
    res.writeHead(408, {
      'Content-Type': 'application/json; charset=utf-8',
      Connection: 'close',
      'Content-Length': Buffer.byteLength(body),
    });
    // Closing the socket ends the handler's read of the body ('aborted'); its error answer finds
    // the headers sent and stops there.
    res.end(body, () => socket.destroy());
  }, period);
  timer.unref();
  const stop = () => clearInterval(timer);
  req.once('end', stop);
  res.once('close', stop);
}

function hasBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}
