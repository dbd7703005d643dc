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
];
const CENSOR = '[redacted]';
const SECRET_KEY = `"(?:${SECRET_KEYS.join('|')})"`;
/** A secret key and its value when that is a string, number, boolean or null. */
const SECRET_SCALAR = new RegExp(`(${SECRET_KEY}:)(?:"(?:[^"\\\\]|\\\\.)*"|-?[\\d.eE+-]+|true|false|null)`, 'gi');
/** A secret key whose value is an object or array (rare: the line is parsed to censor it whole). */
const SECRET_NESTED = new RegExp(`${SECRET_KEY}:[[{]`, 'i');
const SECRET_NAME = new RegExp(`^(?:${SECRET_KEYS.join('|')})$`, 'i');

/**
 * Censors secret values in a finished log line. Done on the line rather than with pino's `redact`
 * paths: it covers every depth, serialized errors and child bindings alike, and costs one regular
 * expression scan per line, where pino's wildcard paths copied each logged object (most of the
 * worker's allocation per job).
 */
export function redactLine(line: string): string {
  if (SECRET_NESTED.test(line)) line = redactParsed(line);
  return line.replace(SECRET_SCALAR, `$1"${CENSOR}"`);
}

function redactParsed(line: string): string {
  const censor = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(censor);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_NAME.test(k) ? CENSOR : censor(v)]));
  };
  try {
    return `${JSON.stringify(censor(JSON.parse(line)))}\n`;
  } catch {
    return line; // not one JSON object: its scalar secrets are still censored
  }
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
