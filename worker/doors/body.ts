// Request bodies of the routes that take jobs, read so a large one is never held whole: the body
// is read in chunks, and each long `images[*].image` string (at any depth: the seed's top level,
// `input`, the Vast envelope's `payload.input`) that is not a URL is decoded from base64 into a
// spool file on the data volume as it arrives (jobs/files.ts, comfy/image-spool.ts). What is left of the text is
// small and parsed by JSON.parse; the decoded images sit in the parsed value as SpooledImages.
// The spool files belong to the request until a job takes them (the store adopts them); those
// no job took are deleted when the answer is done.
//
// Small bodies of known length are read whole and parsed as express.json would. Bodies this
// module does not read (a charset other than UTF-8, a Content-Encoding) go to the fallback
// parser, as before. Errors carry body-parser's `type`, so the doors' error handlers answer them
// as they always have (400 malformed, 413 too large).
import type { IncomingMessage } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import type { InputSpool } from '../jobs/files';
import { JsonDiverter, type JsonPath } from '../util/json-divert';

export interface BodyOptions {
  /** MAX_BODY_MB */
  maxBytes: number;
  /** Where the request's decoded images go (the job facade's inputSpool). */
  spool: () => InputSpool;
  /** Bodies of a known length up to this many bytes are read whole. */
  wholeUpTo?: number;
  /** Image strings longer than this many bytes are decoded into spool files. */
  spoolAbove?: number;
}

const WHOLE_UP_TO = 64 * 1024;
const SPOOL_ABOVE = 16 * 1024;

/** The JSON text (with diverted images replaced) and how to put the decoded images in its value. */
export interface ReadBody {
  text: string;
  attach(root: unknown): void;
}

/** An error as body-parser makes them (http-errors), for the doors' bodyReadError. */
function bodyError(status: number, message: string, type: string): Error {
  return Object.assign(new Error(message), { status, statusCode: status, expose: true, type });
}

/** `images[<index>].image`, wherever it is. */
export function isImagePath(path: JsonPath): boolean {
  const n = path.length;
  return n >= 3 && path[n - 1] === 'image' && typeof path[n - 2] === 'number' && path[n - 3] === 'images';
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || !Number.isNaN(Number(req.headers['content-length'] ?? NaN));
}

/** UTF-8 (or no charset) and no Content-Encoding: what this module reads itself. */
function plain(req: IncomingMessage): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  return (charset === undefined || charset === 'utf-8' || charset === 'utf8') && encoding === 'identity';
}

/** Reads the body, decoding long images into spool files released when `res` closes. */
export async function readBody(req: IncomingMessage, res: Response, opts: BodyOptions): Promise<ReadBody> {
  try {
    return await read(req, res, opts);
  } catch (err) {
    // The rest of a refused body is not read: the connection closes after the answer instead of
    // waiting behind it.
    if (!req.complete && !res.headersSent) res.setHeader('Connection', 'close');
    throw err;
  }
}

async function read(req: IncomingMessage, res: Response, opts: BodyOptions): Promise<ReadBody> {
  const limit = opts.maxBytes;
  const length = Number(req.headers['content-length'] ?? NaN);
  if (length > limit) throw bodyError(413, 'request entity too large', 'entity.too.large');
  if (length <= (opts.wholeUpTo ?? WHOLE_UP_TO)) {
    const chunks: Buffer[] = [];
    await consume(req, limit, (chunk) => void chunks.push(chunk));
    return { text: Buffer.concat(chunks).toString('utf8'), attach: () => undefined };
  }
  let spool: InputSpool | undefined;
  res.once('close', () => spool?.release());
  const diverter = new JsonDiverter({
    wants: isImagePath,
    divert: (_path, head) => (spool ??= opts.spool()).image(head),
    minBytes: opts.spoolAbove ?? SPOOL_ABOVE,
  });
  try {
    await consume(req, limit, (chunk) => diverter.feed(chunk));
    return await diverter.finish();
  } catch (err) {
    diverter.abort();
    throw err;
  }
}

/** Feeds the body to `take` chunk by chunk, pausing the request while `take` works. */
function consume(req: IncomingMessage, limit: number, take: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    let failed = false;
    /** The chunk being taken: 'end' may come before it is (a stream ends even while paused). */
    let taking: Promise<void> = Promise.resolve();
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      cleanup();
      // Left paused, as body-parser leaves it: the answer is sent, the rest is not read.
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) return fail(bodyError(413, 'request entity too large', 'entity.too.large'));
      const taken = take(chunk);
      if (!(taken instanceof Promise)) return;
      req.pause();
      taking = taken.then(
        () => {
          if (!failed) req.resume();
        },
        (err: unknown) => fail(err as Error),
      );
    };
    const onEnd = () => {
      cleanup();
      void taking.then(() => {
        if (!failed) resolve();
      });
    };
    const onAborted = () => fail(bodyError(400, 'request aborted', 'request.aborted'));
    const onError = (err: Error) => fail(err);
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAborted);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('aborted', onAborted);
    req.once('error', onError);
  });
}

/** Parses a body's text as express.json (strict) does: an object or array; an empty body is {}. */
function parseStrict(body: ReadBody): unknown {
  const text = body.text.charCodeAt(0) === 0xfeff ? body.text.slice(1) : body.text;
  if (text.length === 0) return {};
  const first = /^[ \t\n\r]*(.)/.exec(text)?.[1];
  try {
    if (first !== '{' && first !== '[') throw new SyntaxError(`Unexpected token '${first ?? ''}': the body is not a JSON object`);
    const value = JSON.parse(text) as unknown;
    body.attach(value);
    return value;
  } catch (err) {
    throw bodyError(400, (err as Error).message, 'entity.parse.failed');
  }
}

function isSyntaxError(err: unknown): boolean {
  return err instanceof Error && err.name === 'SyntaxError';
}

/** express.json's place for the job routes: `req.body` is the parsed value, decoded images in it. */
export function jsonBody(opts: BodyOptions, fallback: RequestHandler): RequestHandler {
  // Express 5 passes a rejected promise of a middleware on to the error handler.
  return async (req: Request, res: Response, next) => {
    if (!hasBody(req) || !req.is('application/json')) return next();
    if (!plain(req)) return fallback(req, res, next);
    let body: ReadBody;
    try {
      body = await readBody(req, res, opts);
    } catch (err) {
      throw isSyntaxError(err) ? bodyError(400, (err as Error).message, 'entity.parse.failed') : err;
    }
    req.body = parseStrict(body);
    next();
  };
}

/**
 * express.text's place for the Vast door, which needs the text itself (signed numbers keep their
 * tokens): `req.body` is the ReadBody. A body whose diverted image broke JSON's grammar gets an
 * empty text, which the envelope parser refuses as invalid JSON.
 */
export function textBody(opts: BodyOptions, fallback: RequestHandler): RequestHandler {
  return async (req: Request, res: Response, next) => {
    if (!hasBody(req)) return next();
    if (!plain(req)) return fallback(req, res, next);
    try {
      req.body = await readBody(req, res, opts);
    } catch (err) {
      if (!isSyntaxError(err)) throw err;
      req.body = { text: '', attach: () => undefined } satisfies ReadBody;
    }
    next();
  };
}
