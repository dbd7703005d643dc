// Structured JSON logs (pino). The worker never logs request bodies; redaction is a second line
// of defence for credentials that might reach a log call inside an object.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Keys whose values never reach a log line, at any depth, in any letter case. */
const SECRET_KEYS = [
  'secret',
  'secret_access_key',
  'secretAccessKey',
  'access_key_id',
  'accessKeyId',
  'api_key_comfy_org',
  'comfy_org_api_key',
  'orgApiKey',
  'authorization',
  'signature',
  'mtoken',
  'apiKey',
  'x-api-key',
  'password',
  'cookie',
  'set-cookie',
  'sessionToken',
  'session_token',
];
const CENSOR = '"[redacted]"';
/** A secret key as pino writes it, its value right after the colon. */
const SECRET_KEY_SOURCE = `"(?:${SECRET_KEYS.join('|')})":`;
/** Whether a line has one (most have none: tested without allocating). */
const HAS_SECRET_KEY = new RegExp(SECRET_KEY_SOURCE, 'i');
/** Every one (matchAll works on its own copy). */
const SECRET_KEYS_IN_LINE = new RegExp(SECRET_KEY_SOURCE, 'gi');

/**
 * Censors secret values in a finished log line: each secret key's value, whatever it is (string,
 * number, object, array), becomes "[redacted]"; the rest of the line is left as written. Done on
 * the line rather than with pino's `redact` paths: it covers every depth, serialized errors and
 * child bindings alike, and costs one scan per line, where pino's wildcard paths copied each
 * logged object (most of the worker's allocation per job). A key cannot match inside a string
 * value: JSON escapes the quotes there.
 */
export function redactLine(line: string): string {
  if (!HAS_SECRET_KEY.test(line)) return line;
  const limit = line.endsWith('\n') ? line.length - 1 : line.length;
  let out = '';
  let from = 0;
  for (const match of line.matchAll(SECRET_KEYS_IN_LINE)) {
    const start = match.index + match[0].length;
    if (start <= from) continue; // a key inside a value censored already
    out += line.slice(from, start) + CENSOR;
    from = valueEnd(line, start, limit);
  }
  return from === 0 ? line : out + line.slice(from);
}

/** The index just past the JSON value that starts at `i` (at most `limit`). */
function valueEnd(text: string, i: number, limit: number): number {
  const first = text[i];
  if (first === '"') return stringEnd(text, i, limit);
  if (first === '{' || first === '[') {
    let depth = 0;
    for (let j = i; j < limit; j++) {
      const c = text[j];
      if (c === '"') j = stringEnd(text, j, limit) - 1;
      else if (c === '{' || c === '[') depth++;
      else if ((c === '}' || c === ']') && --depth === 0) return j + 1;
    }
    return limit;
  }
  let j = i;
  while (j < limit && text[j] !== ',' && text[j] !== '}' && text[j] !== ']') j++;
  return j;
}

/** The index just past the string whose opening quote is at `i`. */
function stringEnd(text: string, i: number, limit: number): number {
  for (let j = i + 1; j < limit; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c)
      j++; // a backslash escapes the next character
    else if (c === 0x22) return j + 1;
  }
  return limit;
}

/**
 * Standard output, written asynchronously: a synchronous write to a pipe costs the job's thread a
 * system call and often a context switch per line. Lines still buffered are flushed when the
 * process exits (pino registers that for its own destinations); only a SIGKILL can lose the last.
 */
export function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'comfyui-worker' },
      hooks: { streamWrite: redactLine },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
