// Structured JSON logs (pino). The worker never logs request bodies; the redaction list is a second
// line of defence for credentials that might reach a log call inside an object.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

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

/**
 * Standard output, written asynchronously: a synchronous write to a pipe costs the job's thread a
 * system call and often a context switch per line. Lines still buffered are flushed when the
 * process exits (pino registers that for its own destinations); only a SIGKILL can lose the last.
 */
export function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const paths = SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);
  return pino(
    {
      level,
      base: { service: 'comfyui-worker' },
      redact: { paths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
