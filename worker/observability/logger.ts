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
