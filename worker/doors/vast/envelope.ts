// The PyWorker request envelope: `{"auth_data": {...}, "session_id": null, "payload": {...}}`.
// Parsed from the raw body so the signed auth_data fields keep their exact number tokens
// (`"cost": 100.0` must be signed as `100.0`). Problems become PyWorker's 422 bodies:
// `{"error": "invalid JSON"}`, or a map from field to problem such as
// `{"auth_data": {"signature": "missing parameter"}, "payload": "field missing"}`.
import { z } from 'zod';
import { isObject } from '../../util/objects';
import { parseRaw, stringEnd, type PyJson } from '../../util/pyjson';

/** The auth_data fields the current SDK requires (request_idx since Oct 2025). */
export const AUTH_FIELDS = ['cost', 'endpoint', 'reqnum', 'request_idx', 'signature', 'url'] as const;

export interface AuthData {
  cost: number | string;
  endpoint: string;
  reqnum: number;
  request_idx: number;
  signature: string;
  url: string;
}

export interface Envelope {
  auth: AuthData;
  /** auth_data as sent, every number kept as its raw token (for the signed messages). */
  rawAuth: () => Record<string, PyJson>;
  sessionId: string | null;
  payload: Record<string, unknown>;
}

export type EnvelopeResult = { ok: true; envelope: Envelope } | { ok: false; status: 422; body: Record<string, unknown> };

const fail = (body: Record<string, unknown>): EnvelopeResult => ({ ok: false, status: 422, body });

export function parseEnvelope(text: string): EnvelopeResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return fail({ error: 'invalid JSON' });
  }
  if (!isObject(body)) return fail({ auth_data: 'field missing', payload: 'field missing' });

  const errors: Record<string, unknown> = {};
  const auth = body.auth_data;
  if (!('auth_data' in body)) errors.auth_data = 'field missing';
  else if (!isObject(auth)) errors.auth_data = { data: 'auth_data must be a dictionary' };
  else {
    const authErrors: Record<string, string> = {};
    for (const field of AUTH_FIELDS) {
      const problem = checkAuthField(field, auth[field], field in auth);
      if (problem !== undefined) authErrors[field] = problem;
    }
    if (Object.keys(authErrors).length > 0) errors.auth_data = authErrors;
  }
  if (!('payload' in body)) errors.payload = 'field missing';
  else if (!isObject(body.payload)) errors.payload = { data: 'payload must be a dictionary' };
  const sessionId = body.session_id ?? null;
  if (sessionId !== null && typeof sessionId !== 'string') errors.session_id = 'must be a string or null';
  if (Object.keys(errors).length > 0) return fail(errors);

  let raw: Record<string, PyJson> | undefined;
  return {
    ok: true,
    envelope: {
      auth: auth as unknown as AuthData,
      rawAuth: () => (raw ??= rawAuthData(text) ?? (auth as Record<string, PyJson>)),
      sessionId: sessionId as string | null,
      payload: body.payload as Record<string, unknown>,
    },
  };
}

/** Each auth_data field's type, with PyWorker's problem text when a value is not of it. */
const AUTH_FIELD_SCHEMAS: Record<(typeof AUTH_FIELDS)[number], [z.ZodType, string]> = {
  cost: [z.union([z.number(), z.string()]).meta({ description: 'The workload of the request' }), 'must be a number'],
  endpoint: [z.string(), 'must be a string'],
  reqnum: [z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER), 'must be an integer'],
  request_idx: [z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER), 'must be an integer'],
  // An empty signature is present (and fails verification with a 401, like any bad one).
  signature: [z.string().meta({ description: 'base64 RSA signature from the autoscaler' }), 'must be a string'],
  url: [z.string().meta({ description: "The worker's public URL" }), 'must be a string'],
};

/** The envelope as the API description shows it, from the schemas parseEnvelope checks with. */
export const envelopeSchema = z.object({
  auth_data: z
    .object(Object.fromEntries(AUTH_FIELDS.map((field) => [field, AUTH_FIELD_SCHEMAS[field][0]])))
    .meta({ description: "The body of the autoscaler's /route/ answer, as the Vast SDK sends it" }),
  session_id: z.string().nullable().optional().meta({ description: 'Must be null: ComfyUI has no sessions (410 otherwise)' }),
  payload: z.record(z.string(), z.unknown()).meta({ description: 'The api-wrapper request ({"input": {...}})' }),
});

function checkAuthField(field: (typeof AUTH_FIELDS)[number], value: unknown, present: boolean): string | undefined {
  if (!present) return 'missing parameter';
  const [schema, problem] = AUTH_FIELD_SCHEMAS[field];
  return schema.safeParse(value).success ? undefined : problem;
}

/**
 * Finds the top-level "auth_data" value in the (valid) JSON text and parses just that part with
 * raw number tokens. Strings are skipped with indexOf, so a large payload costs little.
 */
function rawAuthData(text: string): Record<string, PyJson> | undefined {
  let i = 0;
  const ws = () => {
    while (' \t\n\r'.includes(text[i] ?? 'x')) i++;
  };
  ws();
  if (text[i] !== '{') return undefined;
  i++;
  let found: [number, number] | undefined;
  for (;;) {
    ws();
    if (text[i] !== '"') return found && asObject(text.slice(found[0], found[1]));
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = keyEnd;
    ws();
    i++; // ':'
    ws();
    const start = i;
    i = skipValue(text, i);
    if (key === 'auth_data') found = [start, i]; // the last one wins, as in JSON.parse
    ws();
    if (text[i] === ',') i++;
  }
}

function asObject(text: string): Record<string, PyJson> | undefined {
  const value = parseRaw(text);
  return isObject(value) ? (value as Record<string, PyJson>) : undefined;
}

/** Index just past the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  const ch = text[i];
  if (ch === '"') return stringEnd(text, i);
  if (ch === '{' || ch === '[') {
    let depth = 0;
    while (i < text.length) {
      const c = text[i]!;
      if (c === '"') {
        i = stringEnd(text, i);
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < text.length && !',}] \t\n\r'.includes(text[i]!)) i++;
  return i;
}
