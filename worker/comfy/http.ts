// ComfyUI's HTTP routes, one method each. Every call has a timeout and can be aborted; every
// failure becomes a WorkerError that says which call failed and why.
import http from 'node:http';
import type { Readable } from 'node:stream';
import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig } from 'axios';
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
}

export class ComfyHttp {
  readonly baseUrl: string;
  private readonly client: AxiosInstance;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
    this.client = axios.create({
      baseURL: baseUrl,
      // ComfyUI is on loopback: never route it through HTTP(S)_PROXY.
      proxy: false,
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: 16 }),
      timeout: CONTROL_TIMEOUT_MS,
      validateStatus: () => true,
      maxContentLength: Infinity,
      maxBodyLength: Infinity,
    });
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
      responseType: 'stream',
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
    const form = new FormData();
    form.append('image', new Blob([bytes]), name);
    form.append('type', 'input');
    form.append('overwrite', 'true');
    const res = await this.request<unknown>({ method: 'POST', url: '/upload/image', data: form, signal });
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

  private async request<T>(config: AxiosRequestConfig): Promise<{ status: number; data: T; headers: Record<string, unknown> }> {
    try {
      const res = await this.client.request<T>(config);
      return { status: res.status, data: res.data, headers: res.headers as Record<string, unknown> };
    } catch (err) {
      throw this.connectionError(config.url ?? '', err);
    }
  }

  private expectOk<T>(res: { status: number; data: T }, path: string): T {
    if (res.status >= 200 && res.status < 300) return res.data;
    throw new WorkerError(502, 'comfy_connection', `ComfyUI answered ${res.status} to ${path}`);
  }

  private connectionError(path: string, err: unknown): WorkerError {
    if (err instanceof WorkerError) return err;
    if (axios.isCancel(err) || (err instanceof Error && err.name === 'CanceledError')) {
      // The caller aborted: hand back the reason it aborted with (deadline or cancel).
      const reason = (err as { config?: AxiosRequestConfig }).config?.signal;
      if (reason && 'reason' in reason && reason.reason instanceof WorkerError) return reason.reason;
      return new WorkerError(499, 'cancelled', `Request to ComfyUI ${path} was aborted`);
    }
    const code = err instanceof AxiosError ? err.code : undefined;
    if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
      return new WorkerError(502, 'comfy_connection', `ComfyUI timed out on ${path}`, { cause: err });
    }
    const detail = code ?? (err instanceof Error ? err.message : String(err));
    return new WorkerError(502, 'comfy_connection', `Cannot connect to ComfyUI at ${this.baseUrl} (${path}): ${detail}`, {
      cause: err,
    });
  }
}
