// The worker's job API as the CLI uses it: POST /run, GET /status/{id}, POST /cancel/{id}.
// Node's own fetch; every failure becomes a CliError carrying the exit code it means, with the
// worker's own message when it sent one.
import { CliError, EXIT } from './exit-codes';

/** What the CLI reads of GET /status/{id} (README: "GET /status/{job_id}"). */
export interface StatusBody {
  job_id: string;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  result: unknown;
  error: string | null;
  error_code: string | null;
  error_details?: unknown;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  queue_position?: number;
  progress?: {
    percentage?: number;
    completed_nodes?: number;
    total_nodes?: number;
    current_node?: string | null;
    current_node_progress?: { value: number; max: number } | null;
  } | null;
}

export interface ClientOptions {
  url: string;
  apiKey?: string | undefined;
}

/** Per request; a completed job's /status carries its outputs inline, hence the longer read. */
const REQUEST_TIMEOUT_MS = 30_000;
const STATUS_TIMEOUT_MS = 300_000;

/** The message of the worker's error body (`{"error": {"message"}}`, `{"error": "..."}`, `{"message"}`). */
function workerMessage(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as { error?: unknown; message?: unknown };
  if (typeof b.error === 'string') return b.error;
  if (typeof b.error === 'object' && b.error !== null && typeof (b.error as { message?: unknown }).message === 'string') {
    return (b.error as { message: string }).message;
  }
  if (typeof b.message === 'string') return b.message;
  return undefined;
}

function describeNetworkError(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return 'no answer in time';
  const cause = err instanceof Error ? (err as { cause?: unknown }).cause : undefined;
  if (cause instanceof Error) return (cause as { code?: string }).code ?? cause.message;
  return err instanceof Error ? err.message : String(err);
}

export class WorkerClient {
  private readonly base: string;

  constructor(private readonly opts: ClientOptions) {
    this.base = opts.url.replace(/\/+$/, '');
  }

  /** Sends one request; answers the parsed JSON of a 2xx, throws a CliError for anything else. */
  async call(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    let res: Response;
    let text: string;
    try {
      const init: RequestInit = { method, headers, signal: AbortSignal.timeout(timeoutMs) };
      if (body !== undefined) init.body = JSON.stringify(body);
      res = await fetch(`${this.base}${path}`, init);
      text = await res.text();
    } catch (err) {
      throw new CliError(EXIT.unreachable, `cannot reach the worker at ${this.base}: ${describeNetworkError(err)}`);
    }
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // Not JSON (a proxy's page): shown as it came.
    }
    if (res.ok) return parsed;
    const message = workerMessage(parsed) ?? (text.trim() || res.statusText);
    const code = res.status >= 500 ? EXIT.unreachable : EXIT.invalidInput;
    throw new CliError(code, `the worker answered ${res.status}: ${message}`);
  }

  async submit(body: unknown): Promise<string> {
    const answer = (await this.call('POST', '/run', body)) as { job_id?: unknown };
    if (typeof answer?.job_id !== 'string') {
      throw new CliError(EXIT.unreachable, `unexpected answer to POST /run: ${JSON.stringify(answer)}`);
    }
    return answer.job_id;
  }

  async status(id: string): Promise<StatusBody> {
    return (await this.call('GET', `/status/${encodeURIComponent(id)}`, undefined, STATUS_TIMEOUT_MS)) as StatusBody;
  }

  async cancel(id: string): Promise<{ message?: string; status?: string }> {
    return (await this.call('POST', `/cancel/${encodeURIComponent(id)}`)) as { message?: string; status?: string };
  }

  /** Downloads an output given by URL (S3 delivery) as bytes. */
  async download(url: string): Promise<Buffer> {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw new CliError(EXIT.jobFailed, `cannot download an output from its URL: ${describeNetworkError(err)}`);
    }
  }
}
