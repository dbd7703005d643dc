// A fake Vast autoscaler for tests: a real HTTP server on 127.0.0.1 that serves /pubkey/ from a
// key generated here with node:crypto, answers POST /route/ with auth_data signed the way the
// reference describes for each scheme, and records every /worker_status/ and /delete_requests/
// body (raw text and parsed). It can be told to fail the next N posts of a path.
//
// The signed messages are written out by hand here (not with the worker's pyjson module), so
// the tests check the worker against an independent rendering of Python's json.dumps.
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeScheme = 'url' | 'fields' | 'legacy-fields';

export interface Recorded {
  raw: string;
  body: any;
  at: number;
}

export interface RouteOptions {
  url: string;
  scheme?: FakeScheme;
  reqnum?: number;
  requestIdx?: number;
  /** The cost token exactly as the autoscaler writes it, e.g. "100.0". */
  cost?: string;
  endpoint?: string;
  /** Sign with another key (a forgery). */
  key?: KeyObject;
}

export interface FakeAutoscaler {
  url: string;
  publicKeyPem: string;
  privateKey: KeyObject;
  statusReports: Recorded[];
  deleteReports: Recorded[];
  /** Every request received: method and path. */
  hits: Array<{ method: string; path: string; status: number }>;
  /** Answer the next `count` POSTs to `path` with `status` (0 stops failing). */
  failNext(path: '/worker_status/' | '/delete_requests/', count: number, status?: number): void;
  /** Every POST answered with a failure by failNext, with its path. */
  refused: Array<Recorded & { path: string }>;
  /** Called as each refused POST arrives, before it is answered. */
  onRefused: ((refused: Recorded & { path: string }) => void) | undefined;
  /** Status for GET /pubkey/ (200 serves the key). */
  pubkeyStatus: number;
  /** auth_data as the autoscaler's /route/ answer would carry it: raw JSON text and parsed. */
  route(opts: RouteOptions): { text: string; auth: Record<string, unknown> };
  close(): Promise<void>;
}

/** Python's json.dumps(..., indent=4) for the few shapes signed here (ASCII strings, given number tokens). */
export function signedMessage(
  scheme: FakeScheme,
  f: { url: string; cost: string; endpoint: string; reqnum: number; requestIdx: number },
): string {
  const s = (v: string) => JSON.stringify(v);
  if (scheme === 'url') return `{\n    "url": ${s(f.url)}\n}`;
  const lines = [`"cost": ${f.cost}`, `"endpoint": ${s(f.endpoint)}`, `"reqnum": ${f.reqnum}`];
  if (scheme === 'fields') lines.push(`"request_idx": ${f.requestIdx}`);
  lines.push(`"url": ${s(f.url)}`);
  return `{\n    ${lines.join(',\n    ')}\n}`;
}

export function signMessage(message: string, key: KeyObject): string {
  return sign('sha256', Buffer.from(message, 'utf8'), key).toString('base64');
}

export async function startFakeAutoscaler(opts: { scheme?: FakeScheme } = {}): Promise<FakeAutoscaler> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const failures = new Map<string, { count: number; status: number }>();
  let nextReqnum = 1;

  const fake: FakeAutoscaler = {
    url: '',
    publicKeyPem,
    privateKey,
    statusReports: [],
    deleteReports: [],
    refused: [],
    onRefused: undefined,
    hits: [],
    pubkeyStatus: 200,
    failNext(path, count, status = 500) {
      failures.set(path, { count, status });
    },
    route(r) {
      const scheme = r.scheme ?? opts.scheme ?? 'url';
      const fields = {
        url: r.url,
        cost: r.cost ?? '100.0',
        endpoint: r.endpoint ?? 'comfy-endpoint',
        reqnum: r.reqnum ?? nextReqnum++,
        requestIdx: r.requestIdx ?? 1000 + nextReqnum,
      };
      const signature = signMessage(signedMessage(scheme, fields), r.key ?? privateKey);
      const text =
        `{"__request_id": "${randomUUID()}", "cost": ${fields.cost}, "endpoint": ${JSON.stringify(fields.endpoint)}, ` +
        `"reqnum": ${fields.reqnum}, "request_idx": ${fields.requestIdx}, "signature": "${signature}", "url": ${JSON.stringify(fields.url)}}`;
      return { text, auth: JSON.parse(text) as Record<string, unknown> };
    },
    close: async () => undefined,
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '').split('?')[0] ?? '';
      const answer = (status: number, body = '', type = 'application/json') => {
        fake.hits.push({ method: req.method ?? '', path, status });
        res.writeHead(status, { 'content-type': type, connection: 'close' }).end(body);
      };
      if (req.method === 'GET' && path === '/pubkey/') {
        return fake.pubkeyStatus === 200 ? answer(200, publicKeyPem, 'text/plain') : answer(fake.pubkeyStatus, 'unavailable');
      }
      if (req.method === 'POST' && (path === '/worker_status/' || path === '/delete_requests/')) {
        const failure = failures.get(path);
        if (failure && failure.count > 0) {
          failure.count--;
          const refused = { path, raw, body: JSON.parse(raw), at: Date.now() };
          fake.refused.push(refused);
          fake.onRefused?.(refused);
          return answer(failure.status, '{"error":"fake failure"}');
        }
        const list = path === '/worker_status/' ? fake.statusReports : fake.deleteReports;
        list.push({ raw, body: JSON.parse(raw), at: Date.now() });
        return answer(200, '{}');
      }
      if (req.method === 'POST' && path === '/route/') {
        // The SDK's /route/ call; cost is echoed with its own token.
        const body = JSON.parse(raw) as { endpoint?: string; request_idx?: number; url?: string };
        const cost = /"cost"\s*:\s*(-?[0-9.eE+]+)/.exec(raw)?.[1] ?? '100.0';
        const { text } = fake.route({ url: body.url ?? '', cost, endpoint: body.endpoint, requestIdx: body.request_idx });
        return answer(200, text);
      }
      answer(404, '{"error":"not found"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}
