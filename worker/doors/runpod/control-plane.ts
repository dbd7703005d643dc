// Requests to RunPod's internal job API (job-take, job-done, job-stop), with
// `Authorization: <RUNPOD_AI_API_KEY>` (no "Bearer", as the SDK sends it) on every call. Errors
// say what failed (status, network code, timeout) and never carry headers, so the key cannot
// reach a log line. Its own keep-alive agents: a long-poll never holds up a result post.
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import { deadline } from '../../net/deadline';

/** The runpod-python protocol level this door speaks (job-stop needs 1.10 or later). */
export const RUNPOD_PROTOCOL_VERSION = '1.12.0';

/** Largest answer read from the control plane (a job's input is at most 20 MB of JSON). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export interface PlaneAnswer {
  status: number;
  text: string;
}

export interface PlaneRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: string;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

export class ControlPlane {
  private readonly headers: Record<string, string>;
  private readonly agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true }),
  };

  constructor(apiKey: string | undefined) {
    this.headers = {
      'User-Agent': `comfyui-worker (${os.platform()}; ${os.arch()}) Language/Node ${process.versions.node} RunPod/${RUNPOD_PROTOCOL_VERSION}`,
      ...(apiKey !== undefined ? { Authorization: apiKey } : {}),
    };
  }

  /** The headers every call carries (the heartbeat thread sends them too). */
  get baseHeaders(): Readonly<Record<string, string>> {
    return this.headers;
  }

  /**
   * One request. Resolves with any HTTP answer; rejects with an Error whose message names the
   * cause (or with the signal's reason when the caller aborted).
   */
  request(req: PlaneRequest): Promise<PlaneAnswer> {
    const url = new URL(req.url);
    const secure = url.protocol === 'https:';
    const limit = deadline(req.timeoutMs, req.signal);
    return new Promise<PlaneAnswer>((resolve, reject) => {
      const fail = (err: Error) => {
        limit.done();
        if (limit.expired) reject(new Error(`timed out after ${req.timeoutMs} ms`));
        else if (req.signal?.aborted) reject(req.signal.reason);
        else reject(new Error((err as NodeJS.ErrnoException).code ?? err.message));
      };
      const headers: Record<string, string | number> = { ...this.headers, ...req.headers };
      if (req.body !== undefined) headers['Content-Length'] = Buffer.byteLength(req.body);
      const outgoing = (secure ? https : http).request(
        url,
        { method: req.method, headers, agent: secure ? this.agents.https : this.agents.http, signal: limit.signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) res.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on('error', fail);
          res.on('end', () => {
            limit.done();
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          });
        },
      );
      outgoing.on('error', fail);
      outgoing.end(req.body);
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
