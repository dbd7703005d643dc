// HTTP routing and the websocket upgrade, with aiohttp's response shapes: json.dumps bodies with
// "application/json; charset=utf-8", empty 200s as application/octet-stream, "404: Not Found"
// text for unknown routes, and the bare 500 page for anything the Python server would raise on.
// Every route is also served under /api.

import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import type { WebSocketServer } from 'ws';
import {
  annotatedFilepath,
  folderType,
  guessMime,
  pyAbspath,
  pyBasename,
  pyCommonpath,
  pyJoin,
  pyNormpath,
  pySplitext,
} from './files';
import { isFormFile, parseForm } from './multipart';
import type { NodeClass, NodeEnv } from './nodes';
import type { ComfyProcess } from './process';
import { dumps } from '../worker/util/pyjson';
import { PyException, pyInt } from './pyvalues';
import type { SimulatorTiming } from './timing';
import type { RecordedRequest, SimulatorFaults } from './types';

export interface ServerContext {
  /** The current simulated process. */
  proc(): ComfyProcess;
  readonly classes: ReadonlyMap<string, NodeClass>;
  readonly env: NodeEnv;
  readonly faults: SimulatorFaults;
  readonly models: readonly string[];
  readonly features: unknown;
  systemStats(): unknown;
  /** Logs a request; the entry is where a handler notes the body it read. */
  record(method: string, path: string): RecordedRequest;
  /** A delay that ends early when the simulator crashes or closes. */
  delay(ms: number): Promise<void>;
  /** The server's own latencies (timing.ts). */
  readonly timing: SimulatorTiming;
}

const SERVER = 'Python/3.11 aiohttp/3.8.4';
const MAX_BODY = 104857600;
const ERROR_500 = '500 Internal Server Error\n\nServer got itself in trouble';

/** folder_paths.folder_names_and_paths keys (NOT RECORDED: from ComfyUI's source). */
const MODEL_FOLDERS = [
  'checkpoints',
  'configs',
  'loras',
  'vae',
  'text_encoders',
  'diffusion_models',
  'clip_vision',
  'style_models',
  'embeddings',
  'diffusers',
  'vae_approx',
  'controlnet',
  'gligen',
  'upscale_models',
  'custom_nodes',
  'hypernetworks',
  'photomaker',
  'classifiers',
  'model_patches',
  'audio_encoders',
];

class TooLarge extends Error {
  constructor(readonly actual: number) {
    super('too large');
  }
}

function send(res: ServerResponse, status: number, headers: Array<[string, string]>, body: Buffer | string, head: boolean): void {
  if (res.destroyed) return;
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  const raw: string[] = [];
  for (const [k, v] of [...headers, ['Content-Length', String(buf.length)], ['Server', SERVER]] as Array<[string, string]>)
    raw.push(k, v);
  res.writeHead(status, raw);
  res.end(head ? undefined : buf);
}

function json(res: ServerResponse, status: number, value: unknown, head = false): void {
  send(res, status, [['Content-Type', 'application/json; charset=utf-8']], dumps(value), head);
}

function empty(res: ServerResponse, status: number, head = false): void {
  send(res, status, [['Content-Type', 'application/octet-stream']], '', head);
}

function text(res: ServerResponse, status: number, body: string, extra: Array<[string, string]> = []): void {
  send(res, status, [['Content-Type', 'text/plain; charset=utf-8'], ...extra], body, false);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > MAX_BODY) {
        failed = true;
        reject(new TooLarge(size));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** A request body as plain values for the request log (tests read it), or undefined. */
function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** aiohttp's request.text(): UTF-8, strict. */
function utf8(body: Buffer): string {
  return new TextDecoder('utf-8', { fatal: true }).decode(body);
}

type Handler = (
  c: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  m: RegExpExecArray,
  q: URLSearchParams,
  head: boolean,
  rec: RecordedRequest,
) => Promise<void> | void;

const routes: Array<[string, RegExp, Handler]> = [
  ['GET', /^\/system_stats$/, (c, _r, res, _m, _q, head) => json(res, 200, c.systemStats(), head)],
  ['GET', /^\/features$/, (c, _r, res, _m, _q, head) => json(res, 200, c.features, head)],
  ['GET', /^\/embeddings$/, (_c, _r, res, _m, _q, head) => json(res, 200, [], head)],
  [
    'GET',
    /^\/object_info$/,
    (c, _r, res, _m, _q, head) => json(res, 200, new Map([...c.classes].map(([k, cls]) => [k, cls.schema(c.env)])), head),
  ],
  [
    'GET',
    /^\/object_info\/(.+)$/,
    (c, _r, res, m, _q, head) => {
      const cls = c.classes.get(m[1] ?? '');
      json(res, 200, cls ? new Map([[cls.name, cls.schema(c.env)]]) : new Map(), head);
    },
  ],
  ['GET', /^\/models$/, (_c, _r, res, _m, _q, head) => json(res, 200, MODEL_FOLDERS, head)],
  [
    'GET',
    /^\/models\/(.+)$/,
    (c, _r, res, m, _q, head) => {
      const folder = m[1] ?? '';
      if (!MODEL_FOLDERS.includes(folder)) empty(res, 404, head);
      else json(res, 200, folder === 'checkpoints' ? c.models : [], head);
    },
  ],
  [
    'GET',
    /^\/prompt$/,
    (c, _r, res, _m, _q, head) => json(res, 200, new Map([['exec_info', c.proc().queueInfo().get('exec_info')]]), head),
  ],
  ['GET', /^\/queue$/, (c, _r, res, _m, _q, head) => json(res, 200, c.proc().getQueue(), head)],
  [
    'GET',
    /^\/history$/,
    (c, _r, res, _m, q, head) => {
      const mi = q.get('max_items');
      const off = q.get('offset');
      const maxItems = mi === null ? null : Number(pyInt(mi));
      const offset = off === null ? -1 : Number(pyInt(off));
      json(res, 200, c.proc().queue.historyList(maxItems, offset), head);
    },
  ],
  [
    'GET',
    /^\/history\/(.+)$/,
    async (c, _r, res, m, _q, head) => {
      if (c.timing.historyMs > 0) await c.delay(c.timing.historyMs);
      json(res, 200, c.proc().queue.historyOne(m[1] ?? ''), head);
    },
  ],
  ['GET', /^\/view$/, (c, req, res, _m, q, head) => view(c, req, res, q, head)],
  ['GET', /^\/ws$/, (_c, _r, res) => text(res, 400, 'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".')],
  [
    'POST',
    /^\/prompt$/,
    async (c, req, res) => {
      const r = c.proc().postPrompt(utf8(await readBody(req)));
      if (c.timing.promptAnswerMs > 0) await c.delay(c.timing.promptAnswerMs);
      json(res, r.status, r.json);
      r.afterAnswer?.();
    },
  ],
  [
    'POST',
    /^\/queue$/,
    async (c, req, res, _m, _q, _h, rec) => {
      const body = utf8(await readBody(req));
      rec.body = jsonOrUndefined(body);
      c.proc().postQueue(body);
      empty(res, 200);
    },
  ],
  [
    'POST',
    /^\/interrupt$/,
    async (c, req, res, _m, _q, _h, rec) => {
      const body = utf8(await readBody(req));
      rec.body = jsonOrUndefined(body);
      c.proc().postInterrupt(body);
      empty(res, 200);
    },
  ],
  [
    'POST',
    /^\/free$/,
    async (c, req, res, _m, _q, _h, rec) => {
      const body = utf8(await readBody(req));
      rec.body = jsonOrUndefined(body);
      c.proc().postFree(body);
      empty(res, 200);
    },
  ],
  [
    'POST',
    /^\/history$/,
    async (c, req, res) => {
      c.proc().postHistory(utf8(await readBody(req)));
      empty(res, 200);
    },
  ],
  ['POST', /^\/upload\/image$/, async (c, req, res) => upload(c, req, res)],
];

/** GET /view: folder_paths rules, then aiohttp's FileResponse headers. */
async function view(
  c: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
  head: boolean,
): Promise<void> {
  if (c.faults.viewDelayMs > 0) await c.delay(c.faults.viewDelayMs);
  if (c.timing.viewMs > 0) await c.delay(c.timing.viewMs);
  const raw = q.get('filename');
  if (raw === null) return empty(res, 404, head);
  const ann = annotatedFilepath(raw);
  const filename = ann.name;
  if (!filename) return empty(res, 400, head);
  if (filename.startsWith('/') || filename.includes('..')) return empty(res, 400, head);
  const folder = ann.folder ?? folderType(q.get('type') ?? 'output');
  if (folder === null) return empty(res, 400, head);
  let dir = join(c.env.dirs.dataDir, folder);
  const sub = q.get('subfolder');
  if (sub !== null) {
    const full = pyJoin(dir, sub);
    if (pyCommonpath(pyAbspath(full), dir) !== dir) return empty(res, 403, head);
    dir = full;
  }
  const name = pyBasename(filename);
  const file = pyJoin(dir, name);
  let st;
  try {
    st = statSync(file, { bigint: true });
  } catch {
    return empty(res, 404, head);
  }
  if (!st.isFile()) return empty(res, 404, head);
  let ct = guessMime(name) ?? 'application/octet-stream';
  // ComfyUI forces these to download instead of rendering.
  if (['text/html', 'text/html-sandboxed', 'application/xhtml+xml', 'text/javascript', 'text/css'].includes(ct))
    ct = 'application/octet-stream';
  const size = Number(st.size);
  const etag = `"${st.mtimeNs.toString(16)}-${size.toString(16)}"`;
  const lastModified = new Date(Number(st.mtimeMs)).toUTCString();
  const base: Array<[string, string]> = [
    ['Content-Disposition', `filename="${name}"`],
    ['Content-Type', ct],
    ['Etag', etag],
    ['Last-Modified', lastModified],
  ];
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
    res.writeHead(304, [...base.flat(), 'Server', SERVER]);
    res.end();
    return;
  }
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (range && (range[1] !== '' || range[2] !== '')) {
    if (range[1] === '') start = Math.max(0, size - Number(range[2]));
    else {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(end, Number(range[2]));
    }
    if (start >= size || start > end) {
      res.writeHead(416, ['Content-Range', `bytes */${size}`, 'Content-Length', '0', 'Server', SERVER]);
      res.end();
      return;
    }
    status = 206;
  }
  const headers = [...base.flat(), 'Content-Length', String(end - start + 1), 'Accept-Ranges', 'bytes', 'Server', SERVER];
  if (status === 206) headers.push('Content-Range', `bytes ${start}-${end}/${size}`);
  res.writeHead(status, headers);
  if (head || size === 0) {
    res.end();
    return;
  }
  createReadStream(file, { start, end }).pipe(res);
}

/** POST /upload/image: ComfyUI's image_upload() (duplicate detection by content, "name (1).ext"). */
async function upload(c: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const form = parseForm(req.headers['content-type'], await readBody(req));
  const image = form.get('image');
  const overwrite = form.get('overwrite');
  const typeField = form.get('type');
  const type = typeField === undefined ? 'input' : typeof typeField === 'string' ? folderType(typeField) : null;
  if (type === null)
    throw new PyException('UnboundLocalError', "cannot access local variable 'type_dir' where it is not associated with a value");
  if (image === undefined || (!isFormFile(image) && image.length === 0)) return empty(res, 400);
  if (!isFormFile(image)) throw new PyException('AttributeError', "'str' object has no attribute 'file'");
  const sub = form.get('subfolder');
  const subfolder = typeof sub === 'string' ? sub : sub === undefined ? '' : String(sub);
  const uploadDir = join(c.env.dirs.dataDir, type);
  const full = pyJoin(uploadDir, pyNormpath(subfolder));
  let filename = image.filename;
  let filepath = pyAbspath(pyJoin(full, filename));
  if (pyCommonpath(uploadDir, filepath) !== uploadDir) return empty(res, 400);
  mkdirSync(full, { recursive: true });
  const [stem, ext] = pySplitext(filename);
  let duplicate = false;
  if (overwrite !== 'true' && overwrite !== '1') {
    for (let i = 1; existsSync(filepath); i++) {
      if (readFileSync(filepath).equals(image.data)) {
        duplicate = true;
        break;
      }
      filename = `${stem} (${i})${ext}`;
      filepath = pyJoin(full, filename);
    }
  }
  if (!duplicate) writeFileSync(filepath, image.data);
  json(
    res,
    200,
    new Map([
      ['name', filename],
      ['subfolder', subfolder],
      ['type', type],
    ]),
  );
}

function decodePath(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

export function createRequestHandler(c: ServerContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const rec = c.record(req.method ?? 'GET', url.pathname);
    const path = decodePath(url.pathname.startsWith('/api/') ? url.pathname.slice(4) : url.pathname);
    const head = req.method === 'HEAD';
    const method = head ? 'GET' : (req.method ?? 'GET');
    let allowed: string[] = [];
    for (const [m, re, h] of routes) {
      const match = re.exec(path);
      if (!match) continue;
      if (m !== method) {
        allowed.push(m);
        continue;
      }
      Promise.resolve()
        .then(() => h(c, req, res, match, url.searchParams, head, rec))
        .catch((e: unknown) => {
          if (e instanceof TooLarge)
            return text(res, 413, `Maximum request body size ${MAX_BODY} exceeded, actual body size ${e.actual}`);
          if (
            !(e instanceof PyException) &&
            !(e instanceof SyntaxError) &&
            !(e instanceof TypeError && /decode/i.test(e.message))
          ) {
            process.stderr.write(
              `comfyui simulator: ${req.method} ${url.pathname}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
            );
          }
          text(res, 500, ERROR_500);
        });
      return;
    }
    allowed = [...new Set(allowed)];
    if (allowed.length > 0) return text(res, 405, '405: Method Not Allowed', [['Allow', allowed.join(',')]]);
    text(res, 404, '404: Not Found');
  };
}

export function createUpgradeHandler(
  c: ServerContext,
  wss: WebSocketServer,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    c.record(req.method ?? 'GET', url.pathname);
    const path = url.pathname.startsWith('/api/') ? url.pathname.slice(4) : url.pathname;
    socket.on('error', () => undefined);
    if (path !== '/ws') {
      socket.end(
        `HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\nServer: ${SERVER}\r\nConnection: close\r\n\r\n404: Not Found`,
      );
      return;
    }
    if (c.faults.rejectWebsocket) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nServer: ${SERVER}\r\nConnection: close\r\n\r\n`);
      return;
    }
    const proc = c.proc();
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => undefined);
      if (!proc.alive) {
        ws.terminate();
        return;
      }
      proc.connect(ws, url.searchParams.get('clientId') ?? '');
    });
  };
}

/** The recorded /system_stats, with argv showing where this simulator listens. */
export function systemStats(recorded: unknown, host: string, port: number): unknown {
  const copy = JSON.parse(JSON.stringify(recorded)) as { system?: { argv?: string[] } };
  if (copy.system)
    copy.system.argv = [
      'main.py',
      '--cpu',
      '--listen',
      host,
      '--port',
      String(port),
      '--disable-auto-launch',
      '--disable-api-nodes',
    ];
  return copy;
}
