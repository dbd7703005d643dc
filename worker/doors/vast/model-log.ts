// Readiness from a log file, for platforms that watch one (MODEL_LOG with on-load and on-error
// strings). Read from the start, line by line, following appends (and a rotated or truncated
// file). Each line is checked for error strings first, then load strings, and a string only
// matches as a whole token: `BACKENDS_READY` does not fire on `BACKENDS_READY_TIMEOUT`
// (PyWorker's substring match did, and benchmarked a worker that had just failed). The wait is
// bounded (COMFY_READY_TIMEOUT_S): a log that never shows the token is an error, not a worker
// that stays "loading" forever.
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from '../../observability/logger';
import { sleep } from '../../util/time';

const WORD = /[A-Za-z0-9_]/;

/** `token` occurs in `line` with no word character glued to either of its word-character edges. */
export function hasToken(line: string, token: string): boolean {
  if (token === '') return false;
  const startsWord = WORD.test(token[0]!);
  const endsWord = WORD.test(token[token.length - 1]!);
  for (let at = line.indexOf(token); at >= 0; at = line.indexOf(token, at + 1)) {
    const before = at > 0 ? line[at - 1]! : '';
    const after = line[at + token.length] ?? '';
    if (startsWord && before !== '' && WORD.test(before)) continue;
    if (endsWord && after !== '' && WORD.test(after)) continue;
    return true;
  }
  return false;
}

export type LineVerdict = { kind: 'error'; token: string } | { kind: 'load'; token: string } | undefined;

/** Error strings are checked first, so a line with both is an error. */
export function classifyLine(line: string, onLoad: string[], onError: string[]): LineVerdict {
  const error = onError.find((t) => hasToken(line, t));
  if (error !== undefined) return { kind: 'error', token: error };
  const load = onLoad.find((t) => hasToken(line, t));
  return load !== undefined ? { kind: 'load', token: load } : undefined;
}

export interface ModelLogOptions {
  path: string;
  onLoad: string[];
  onError: string[];
  logger: Logger;
  /** The longest wait for the on-load line (the file appearing included). */
  timeoutMs: number;
  /** How often the end of the file is re-read; default 100 ms. */
  pollMs?: number;
}

/** Raised when an on-error string appears; its message is the string (PyWorker's error_msg). */
export class ModelLogError extends Error {
  override readonly name = 'ModelLogError';
}

/** The on-load line did not come in time; the message says what was waited for. */
export class ModelLogTimeout extends Error {
  override readonly name = 'ModelLogTimeout';
}

/**
 * Resolves at the first on-load line; rejects with ModelLogError at an on-error line and with
 * ModelLogTimeout when `timeoutMs` passes first.
 */
export async function waitForModelLog(opts: ModelLogOptions, signal: AbortSignal): Promise<void> {
  const pollMs = opts.pollMs ?? 100;
  const started = Date.now();
  const waitS = () => Math.round((Date.now() - started) / 1000);
  /** Sleeps up to `ms`, never past the deadline; false once the deadline has passed. */
  const pause = async (ms: number): Promise<boolean> => {
    const left = started + opts.timeoutMs - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(ms, left), signal);
    return true;
  };
  let waitingLogged = false;
  while (!fs.existsSync(opts.path)) {
    if (!waitingLogged) opts.logger.info({ path: opts.path }, 'vast: waiting for MODEL_LOG to appear');
    waitingLogged = true;
    if (!(await pause(1_000)))
      throw new ModelLogTimeout(`MODEL_LOG ${opts.path} did not appear within ${waitS()} s (COMFY_READY_TIMEOUT_S)`);
  }
  let offset = 0;
  let inode = -1;
  let decoder = new StringDecoder('utf8');
  let partial = '';
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(opts.path);
    } catch {
      stat = undefined; // rotated away; wait for the new file
    }
    if (stat && (stat.ino !== inode || stat.size < offset)) {
      // A new or truncated file: start again from its beginning.
      inode = stat.ino;
      offset = 0;
      partial = '';
      decoder = new StringDecoder('utf8');
    }
    if (stat && stat.size > offset) {
      const fd = fs.openSync(opts.path, 'r');
      try {
        let read: number;
        while ((read = fs.readSync(fd, buffer, 0, buffer.length, offset)) > 0) {
          offset += read;
          const lines = (partial + decoder.write(buffer.subarray(0, read))).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) {
            const verdict = classifyLine(line.trimEnd(), opts.onLoad, opts.onError);
            if (verdict?.kind === 'error') throw new ModelLogError(verdict.token);
            if (verdict?.kind === 'load') {
              opts.logger.info({ path: opts.path, token: verdict.token }, 'vast: MODEL_LOG says loaded');
              return;
            }
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    if (!(await pause(pollMs))) {
      const tokens = opts.onLoad.map((t) => JSON.stringify(t)).join(' or ');
      throw new ModelLogTimeout(`MODEL_LOG ${opts.path} did not show ${tokens} within ${waitS()} s (COMFY_READY_TIMEOUT_S)`);
    }
  }
}
