// Access control of the HTTP door. With API_KEY set, every route but /health needs
// `Authorization: Bearer <API_KEY>`; with ADMIN_API_KEY set, /admin/* needs that key instead
// (without it, /admin/* needs API_KEY like the rest). Which routes need which key is decided by
// where the check is mounted (app.ts), so it follows Express's own routing (case, slashes).
// Keys are compared in constant time: both sides are hashed first, so neither their content nor
// their length leaks through timing.
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { WorkerError } from '../../errors';
import { sendError } from '../errors';

export interface RequiredKey {
  /** undefined: the routes are open. */
  key: string | undefined;
  /** The variable it comes from, for the 401's message (never the key itself). */
  name: string;
}

const digest = (text: string) => crypto.createHash('sha256').update(text, 'utf8').digest();

function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** undefined when the request may pass, else the 401 to answer with. */
export function checkKey(required: RequiredKey, req: IncomingMessage): WorkerError | undefined {
  if (required.key === undefined) return undefined;
  const token = bearerToken(req.headers.authorization);
  if (token !== undefined && crypto.timingSafeEqual(digest(token), digest(required.key))) return undefined;
  return new WorkerError(
    401,
    'unauthorized',
    token === undefined
      ? `Authorization: this route needs the header "Authorization: Bearer <${required.name}>"`
      : `Authorization: the bearer token is not the ${required.name}`,
    { field: 'Authorization', headers: { 'WWW-Authenticate': 'Bearer' } },
  );
}

export function requireKey(required: RequiredKey): RequestHandler {
  return (req, res, next) => {
    const denied = checkKey(required, req);
    if (denied) sendError(res, denied);
    else next();
  };
}
