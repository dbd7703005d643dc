// ComfyUI's HTTP routes, one method each. Every call has a timeout and can be aborted; every
// failure becomes a WorkerError that says which call failed and why. Calls go straight through
// Node's http client with a keep-alive agent: ComfyUI is on loopback, so there is no proxy, no
// redirect to follow, and a general-purpose client's per-call work is most of a call's cost.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { WorkerError } from '../errors';
import { isObject } from '../util/objects';
import { describeValidationError } from './validation';
import type { HistoryEntry, QueueSnapshot, UploadedFile, Workflow } from './types';

/** Control calls are small; a ComfyUI that takes longer than this is wedged. */
const CONTROL_TIMEOUT_MS = 30_000;

export interface SubmitRequest {
  promptId: string;
  clientId: string;
  workflow: Workflow;
  extraData: Record<string, unknown>;
}

export interface SubmitResponse {
  prompt_id: string;
  number: number;
  node_errors: Record<string, unknown>;
}

export interface ViewStream {
  stream: Readable;
  contentType: string | undefined;
  contentLength: number | undefined;
  /** The whole file, when it was read at once (`stream` then streams these same bytes). */
  bytes?: Buffer;
}

/** A file read whole, as a ViewStream over its bytes. */
export function viewOfBytes(bytes: Buffer, contentType: string | undefined): ViewStream {
  return { stream: Readable.from([bytes], { objectMode: false }), contentType, contentLength: bytes.length, bytes };
}

interface Call {
  method: 'GET' | 'POST';
  url: string;
  params?: Record<string, string>;
  /** A JSON body. */
  data?: unknown;
  /** A ready-made body (multipart). */
  raw?: { bytes: Buffer; contentType: string };
  /** Until the whole answer has arrived, or (streamed answers) until its head has. */
  timeout?: number;
  signal?: AbortSignal;
  /** Hand back the body as a stream instead of reading it. */
  stream?: boolean;
}

interface Answer<T> {
  status: number;
  data: T;
  headers: http.IncomingHttpHeaders;
}

/** The timer of a call ran out (told apart from the caller's abort). */
class CallTimeout extends Error {}

/** Under every usual server's keep-alive timeout (Node 5 s, aiohttp 75 s). */
export const IDLE_SOCKET_MS = 2_000;

export class ComfyHttp {
  readonly baseUrl: string;
  /**
   * A kept-alive socket idle this long is closed by us rather than reused: a server closing an
   * idle connection (Node's after 5 s) just as a request goes out on it resets that request, and
   * a reset POST /prompt cannot safely be sent again. An active request is not affected.
   */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16, timeout: IDLE_SOCKET_MS });

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  async systemStats(timeoutMs = CONTROL_TIMEOUT_MS): Promise<Record<string, unknown>> {
    const res = await this.request<unknown>({ method: 'GET', url: '/system_stats', timeout: timeoutMs });
    const body = this.expectOk(res, '/system_stats');
    if (!isObject(body)) throw new WorkerError(502, 'comfy_connection', 'ComfyUI answered /system_stats with no object');
    return body;
  }

  /** Schemas of the given node classes; unknown classes are absent from the answer. */
  async objectInfo(classType: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const path = `/object_info/${encodeURIComponent(classType)}`;
    const res = await this.request<unknown>({ method: 'GET', url: path, signal });
    const body = this.expectOk(res, path);
    return isObject(body) ? body : {};
  }

  async submit(req: SubmitRequest, signal?: AbortSignal): Promise<SubmitResponse> {
    const body = { prompt: req.workflow, client_id: req.clientId, prompt_id: req.promptId, extra_data: req.extraData };
    const res = await this.request<unknown>({ method: 'POST', url: '/prompt', data: body, signal });
    if (res.status === 400 && isObject(res.data) && 'error' in res.data) {
      throw new WorkerError(400, 'comfy_validation', describeValidationError(res.data), { details: res.data });
    }
    const answer = this.expectOk(res, '/prompt');
    if (!isObject(answer) || typeof answer.prompt_id !== 'string') {
      throw new WorkerError(502, 'comfy_connection', 'ComfyUI answered /prompt without a prompt_id');
    }
    return {
      prompt_id: answer.prompt_id,
      number: typeof answer.number === 'number' ? answer.number : -1,
      node_errors: isObject(answer.node_errors) ? answer.node_errors : {},
    };
  }

  /** The history entry of a finished prompt, or undefined while it is queued, running or unknown. */
  async history(promptId: string, signal?: AbortSignal): Promise<HistoryEntry | undefined> {
    const path = `/history/${encodeURIComponent(promptId)}`;
    const res = await this.request<unknown>({ method: 'GET', url: path, signal });
    const body = this.expectOk(res, path);
    const entry = isObject(body) ? body[promptId] : undefined;
    return isObject(entry) ? (entry as HistoryEntry) : undefined;
  }

  async queue(signal?: AbortSignal): Promise<QueueSnapshot> {
    const res = await this.request<unknown>({ method: 'GET', url: '/queue', signal });
    const body = this.expectOk(res, '/queue');
    const ids = (items: unknown) =>
      (Array.isArray(items) ? items : []).flatMap((item: unknown) =>
        Array.isArray(item) && typeof item[1] === 'string' ? [item[1]] : [],
      );
    return isObject(body) ? { running: ids(body.queue_running), pending: ids(body.queue_pending) } : { running: [], pending: [] };
  }

  /** Interrupts the prompt only if it is the one running (never a bare /interrupt). */
  async interrupt(promptId: string): Promise<void> {
    const res = await this.request({ method: 'POST', url: '/interrupt', data: { prompt_id: promptId } });
    this.expectOk(res, '/interrupt');
  }

  /** Unloads models and frees memory; ComfyUI acts on it between prompts. */
  async free(): Promise<void> {
    const res = await this.request({ method: 'POST', url: '/free', data: { unload_models: true, free_memory: true } });
    this.expectOk(res, '/free');
  }

  async deleteFromQueue(promptId: string): Promise<void> {
    const res = await this.request({ method: 'POST', url: '/queue', data: { delete: [promptId] } });
    this.expectOk(res, '/queue');
  }

  /** Streams one output file; undefined when ComfyUI answers 404 (the file is not there). */
  async view(ref: { filename: string; subfolder: string; type: string }, signal?: AbortSignal): Promise<ViewStream | undefined> {
    const res = await this.request<Readable>({
      method: 'GET',
      url: '/view',
      params: { filename: ref.filename, subfolder: ref.subfolder, type: ref.type },
      stream: true,
      signal,
      // The body may be large: the timeout covers the wait for the response head only.
      timeout: CONTROL_TIMEOUT_MS,
    });
    if (res.status === 404) {
      res.data.resume();
      return undefined;
    }
    if (res.status !== 200) {
      res.data.resume();
      throw new WorkerError(502, 'output_error', `ComfyUI answered ${res.status} to /view for ${ref.filename}`);
    }
    const length = Number(res.headers['content-length']);
    const type = res.headers['content-type'];
    return {
      stream: res.data,
      contentType: typeof type === 'string' ? type : undefined,
      contentLength: Number.isFinite(length) ? length : undefined,
    };
  }

  async uploadImage(name: string, bytes: Buffer, signal?: AbortSignal): Promise<UploadedFile> {
    const raw = multipart([
      { name: 'image', filename: name, bytes },
      { name: 'type', value: 'input' },
      { name: 'overwrite', value: 'true' },
    ]);
    const res = await this.request<unknown>({ method: 'POST', url: '/upload/image', raw, signal });
    if (res.status !== 200) {
      throw new WorkerError(502, 'input_image', `ComfyUI answered ${res.status} when uploading input image ${name}`);
    }
    const body = res.data;
    if (!isObject(body) || typeof body.name !== 'string') {
      throw new WorkerError(502, 'input_image', `ComfyUI's /upload/image answer for ${name} has no name`);
    }
    return {
      name: body.name,
      subfolder: typeof body.subfolder === 'string' ? body.subfolder : '',
      type: typeof body.type === 'string' ? body.type : 'input',
    };
  }

  private async request<T>(call: Call): Promise<Answer<T>> {
    try {
      return await this.send<T>(call);
    } catch (err) {
      throw this.connectionError(call, err);
    }
  }

  private send<T>(call: Call): Promise<Answer<T>> {
    const query = call.params ? `?${new URLSearchParams(call.params).toString()}` : '';
    let body: Buffer | undefined;
    const headers: Record<string, string> = { Accept: 'application/json, */*' };
    if (call.raw) {
      body = call.raw.bytes;
      headers['Content-Type'] = call.raw.contentType;
    } else if (call.data !== undefined) {
      body = Buffer.from(JSON.stringify(call.data));
      headers['Content-Type'] = 'application/json';
    }
    if (body) headers['Content-Length'] = String(body.length);
    return new Promise<Answer<T>>((resolve, reject) => {
      const req = http.request(`${this.baseUrl}${call.url}${query}`, {
        method: call.method,
        agent: this.agent,
        headers,
        signal: call.signal,
      });
      const timer = setTimeout(() => req.destroy(new CallTimeout()), call.timeout ?? CONTROL_TIMEOUT_MS);
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.once('response', (res) => {
        const status = res.statusCode ?? 0;
        if (call.stream) {
          // The body may be large: the timeout covered the wait for the response head only.
          clearTimeout(timer);
          resolve({ status, headers: res.headers, data: res as unknown as T });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        res.once('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let data: unknown = text;
          try {
            if (text !== '') data = JSON.parse(text);
          } catch {
            // Not JSON (an HTML error page): kept as text, and the status decides.
          }
          resolve({ status, headers: res.headers, data: data as T });
        });
      });
      req.end(body);
    });
  }

  private expectOk<T>(res: { status: number; data: T }, path: string): T {
    if (res.status >= 200 && res.status < 300) return res.data;
    throw new WorkerError(502, 'comfy_connection', `ComfyUI answered ${res.status} to ${path}`);
  }

  private connectionError(call: Call, err: unknown): WorkerError {
    const path = call.url;
    if (err instanceof WorkerError) return err;
    if (call.signal?.aborted) {
      // The caller aborted: hand back the reason it aborted with (deadline or cancel).
      const reason: unknown = call.signal.reason;
      if (reason instanceof WorkerError) return reason;
      return new WorkerError(499, 'cancelled', `Request to ComfyUI ${path} was aborted`);
    }
    if (err instanceof CallTimeout) {
      return new WorkerError(502, 'comfy_connection', `ComfyUI timed out on ${path}`, { cause: err });
    }
    const code = (err as { code?: unknown }).code;
    const detail = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
    return new WorkerError(502, 'comfy_connection', `Cannot connect to ComfyUI at ${this.baseUrl} (${path}): ${detail}`, {
      cause: err,
    });
  }
}

type Part = { name: string; value: string } | { name: string; filename: string; bytes: Buffer };

/** A multipart/form-data body, as a browser's FormData would send it. */
function multipart(parts: Part[]): { bytes: Buffer; contentType: string } {
  const boundary = `----comfyui-worker-${randomBytes(12).toString('hex')}`;
  // Quotes and line breaks in a file name are percent-encoded, as browsers do.
  const quoted = (text: string) => text.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${quoted(part.name)}"`;
    if ('bytes' in part) head += `; filename="${quoted(part.filename)}"\r\nContent-Type: application/octet-stream`;
    chunks.push(Buffer.from(`${head}\r\n\r\n`), 'bytes' in part ? part.bytes : Buffer.from(part.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { bytes: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
