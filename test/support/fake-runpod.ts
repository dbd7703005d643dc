// A fake RunPod control plane for tests: a real HTTP server on 127.0.0.1 speaking the serverless
// worker protocol as ../shared/reference/runpod-protocol.md §7 describes it, with the URL shapes
// RunPod gives a worker:
//   GET  /v2/<ep>/job-take/<pod>?gpu=..&job_in_progress=0|1   long-poll: 200 job JSON, or 204
//   POST /v2/<ep>/job-done/<pod>/<job>?gpu=..&isStream=false  result, or {"status":"IN_PROGRESS"} progress
//   POST /v2/<ep>/job-stream/<pod>/<job>?gpu=..               stream partials
//   GET  /v2/<ep>/ping/<pod>?gpu=..&job_id=..&runpod_version=.. heartbeat
//   GET  /v2/<ep>/job-stop/<pod>?gpu=..                       long-poll: 200 {"jobsToStop": [...]}, or 204
// Every request is recorded (with its headers and body); a request without the right
// `Authorization: <key>` is refused with 401. Tests queue jobs, script job-take answers, make
// result posts fail, and ask for a job to be stopped.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Hit {
  method: string;
  kind: 'take' | 'done' | 'stream' | 'ping' | 'stop' | 'other';
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: any;
  /** The job id in job-done / job-stream paths. */
  jobId?: string;
  at: number;
  answered: number;
}

export interface FakeJob {
  id: string;
  input?: unknown;
  [key: string]: unknown;
}

export type TakeAnswer = number | { status: number; body: string };

export interface FakeRunpod {
  url: string;
  apiKey: string;
  podId: string;
  endpoint: string;
  hits: Hit[];
  /** How long a job-take or job-stop long-poll is held when there is nothing to hand out. */
  holdMs: number;
  /** The RUNPOD_* variables RunPod would set for a worker of this fake endpoint. */
  env(extra?: Record<string, string>): Record<string, string>;
  enqueue(...jobs: FakeJob[]): void;
  /** Answers for the next job-take polls, in order, before any queued job is handed out. */
  scriptTake(...answers: TakeAnswer[]): void;
  /** Answer the next `count` result posts (not progress) with `status`. */
  failResults(count: number, status?: number): void;
  /** The next job-stop poll (a waiting one at once) answers {"jobsToStop": [id]}. */
  stopJob(id: string): void;
  takes(): Hit[];
  /** Final job-done posts (progress updates left out), answered or refused. */
  results(jobId?: string): Hit[];
  progress(jobId: string): Hit[];
  pings(): Hit[];
  /** Resolves with the first accepted (2xx) result of the job. */
  resultFor(jobId: string, timeoutMs?: number): Promise<Hit>;
  waitFor(what: string, check: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

interface Held {
  kind: 'take' | 'stop';
  resolve: () => void;
}

export async function startFakeRunpod(opts: { apiKey?: string; podId?: string; holdMs?: number } = {}): Promise<FakeRunpod> {
  const queue: FakeJob[] = [];
  const script: TakeAnswer[] = [];
  const stops: string[] = [];
  const held = new Set<Held>();
  let failing = { count: 0, status: 500 };
  let closed = false;

  const wake = (kind: Held['kind']) => {
    for (const h of held) if (h.kind === kind) h.resolve();
  };
  /** Waits until `ready()` or the hold time passes (the long-poll). */
  const hold = (kind: Held['kind'], until: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      const ready = () => closed || until();
      if (ready()) return resolve();
      const entry: Held = {
        kind,
        resolve: () => {
          if (!ready()) return;
          clearTimeout(timer);
          held.delete(entry);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        held.delete(entry);
        resolve();
      }, fake.holdMs);
      held.add(entry);
    });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://fake');
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = raw === '' ? undefined : JSON.parse(raw);
        } catch {
          body = raw;
        }
        const parts = url.pathname.split('/').filter(Boolean); // v2, ep, kind, pod, job?
        const kind = (
          { 'job-take': 'take', 'job-done': 'done', 'job-stream': 'stream', ping: 'ping', 'job-stop': 'stop' } as const
        )[parts[2] ?? ''];
        const hit: Hit = {
          method: req.method ?? '',
          kind: kind ?? 'other',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          raw,
          body,
          at: Date.now(),
          answered: 0,
        };
        if (kind === 'done' || kind === 'stream') hit.jobId = decodeURIComponent(parts[4] ?? '');
        const answer = (status: number, text = '') => {
          hit.answered = status;
          fake.hits.push(hit);
          if (res.destroyed) return;
          res.writeHead(status, text ? { 'content-type': 'application/json' } : {}).end(text);
        };
        if (req.headers.authorization !== fake.apiKey || parts[3] !== fake.podId) return answer(401, '{"error":"unauthorized"}');
        if (kind === 'take') {
          const next = script.shift();
          if (next !== undefined) return typeof next === 'number' ? answer(next) : answer(next.status, next.body);
          await hold('take', () => queue.length > 0);
          // A worker that gave up the poll (it stopped) is handed nothing: the job stays queued.
          if (req.socket.destroyed) return answer(204);
          const job = queue.shift();
          return job ? answer(200, JSON.stringify(job)) : answer(204);
        }
        if (kind === 'stop') {
          await hold('stop', () => stops.length > 0);
          if (stops.length === 0 || req.socket.destroyed) return answer(204);
          return answer(200, JSON.stringify({ jobsToStop: stops.splice(0) }));
        }
        if (kind === 'done') {
          const progress = (body as { status?: unknown } | undefined)?.status === 'IN_PROGRESS';
          if (!progress && failing.count > 0) {
            failing.count--;
            return answer(failing.status);
          }
          return answer(200, '{}');
        }
        return answer(200, '{}');
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const fake: FakeRunpod = {
    url,
    apiKey: opts.apiKey ?? 'rpa_TESTKEY_3f9c1d',
    podId: opts.podId ?? 'pod-test-1',
    endpoint: 'ep123',
    hits: [],
    holdMs: opts.holdMs ?? 300,
    env(extra = {}) {
      const base = `${url}/v2/${fake.endpoint}`;
      return {
        WORKER_MODE: 'runpod',
        RUNPOD_WEBHOOK_GET_JOB: `${base}/job-take/$RUNPOD_POD_ID?gpu=NVIDIA+SIM`,
        RUNPOD_WEBHOOK_POST_OUTPUT: `${base}/job-done/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+SIM`,
        RUNPOD_WEBHOOK_POST_STREAM: `${base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+SIM`,
        RUNPOD_WEBHOOK_PING: `${base}/ping/$RUNPOD_POD_ID?gpu=NVIDIA+SIM`,
        RUNPOD_AI_API_KEY: fake.apiKey,
        RUNPOD_POD_ID: fake.podId,
        RUNPOD_ENDPOINT_ID: fake.endpoint,
        RUNPOD_PING_INTERVAL: '200',
        RUNPOD_RESULT_BACKOFF_MS: '50',
        RUNPOD_PROGRESS_INTERVAL_MS: '50',
        ...extra,
      };
    },
    enqueue(...jobs) {
      queue.push(...jobs);
      wake('take');
    },
    scriptTake(...answers) {
      script.push(...answers);
    },
    failResults(count, status = 500) {
      failing = { count, status };
    },
    stopJob(id) {
      stops.push(id);
      wake('stop');
    },
    takes: () => fake.hits.filter((h) => h.kind === 'take'),
    results: (jobId) =>
      fake.hits.filter(
        (h) =>
          h.kind === 'done' &&
          (h.body as { status?: unknown })?.status !== 'IN_PROGRESS' &&
          (jobId === undefined || h.jobId === jobId),
      ),
    progress: (jobId) =>
      fake.hits.filter(
        (h) => h.kind === 'done' && h.jobId === jobId && (h.body as { status?: unknown })?.status === 'IN_PROGRESS',
      ),
    pings: () => fake.hits.filter((h) => h.kind === 'ping'),
    async resultFor(jobId, timeoutMs = 15_000) {
      const accepted = () => fake.results(jobId).find((h) => h.answered >= 200 && h.answered < 300);
      await fake.waitFor(`the result of ${jobId}`, () => accepted() !== undefined, timeoutMs);
      return accepted() as Hit;
    },
    async waitFor(what, check, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`fake RunPod: timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      closed = true;
      for (const h of held) h.resolve();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
