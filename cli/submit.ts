// `submit`: send a job, follow it until it ends, write its outputs.
import { WorkerClient, type StatusBody } from './client';
import { CliError, EXIT, type ExitCode } from './exit-codes';
import { writeOutputs } from './outputs';
import { BarProgress, LineProgress, type ProgressView } from './progress';
import { buildRunBody, type SubmitInput } from './request';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stderr is a terminal: show a bar. */
  tty: boolean;
  errStream: NodeJS.WriteStream;
  /** Aborted on Ctrl-C. */
  interrupt: AbortSignal;
}

/** Polling: fast while something changes, slower while nothing does (a long queue). */
const POLL_MIN_MS = 250;
const POLL_MAX_MS = 2_000;
/** How long /status may stay unreachable (a worker restarting) before the CLI gives up. */
const UNREACHABLE_GRACE_MS = 30_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

function fingerprint(s: StatusBody): string {
  return JSON.stringify([s.status, s.queue_position, s.progress]);
}

export function classTypesOf(workflow: Record<string, unknown> | undefined): Record<string, string> {
  const types: Record<string, string> = {};
  for (const [id, node] of Object.entries(workflow ?? {})) {
    const type = (node as { class_type?: unknown } | null)?.class_type;
    if (typeof type === 'string') types[id] = type;
  }
  return types;
}

/**
 * Follows a job with /status until it ends, `deadline` passes (epoch ms) or the user interrupts.
 * Returns the final body, or 'timeout' / 'interrupted'.
 */
export async function follow(
  client: WorkerClient,
  id: string,
  view: ProgressView,
  deadline: number,
  interrupt: AbortSignal,
): Promise<StatusBody | 'timeout' | 'interrupted'> {
  let interval = POLL_MIN_MS;
  let last = '';
  let failingSince: number | undefined;
  for (;;) {
    if (interrupt.aborted) return 'interrupted';
    let status: StatusBody | undefined;
    try {
      status = await client.status(id);
      failingSince = undefined;
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.unreachable) throw err;
      failingSince ??= Date.now();
      if (Date.now() - failingSince > UNREACHABLE_GRACE_MS) throw err;
    }
    if (interrupt.aborted) return 'interrupted';
    if (status) {
      view.update(status);
      if (status.status === 'completed' || status.status === 'failed' || status.status === 'cancelled') return status;
      const print = fingerprint(status);
      interval = print === last ? Math.min(POLL_MAX_MS, Math.round(interval * 1.5)) : POLL_MIN_MS;
      last = print;
    }
    const left = deadline - Date.now();
    if (left <= 0) return 'timeout';
    await sleep(Math.min(interval, left), interrupt);
  }
}

/** Prints how a job ended and writes its outputs; the exit code. */
export async function finish(client: WorkerClient, status: StatusBody, outDir: string, io: Io): Promise<ExitCode> {
  if (status.status === 'completed') {
    const written = await writeOutputs(status.result, outDir, (url) => client.download(url));
    for (const file of written.files) io.out(`${file}\n`);
    for (const t of written.texts) io.out(`text${t.nodeId ? ` (node ${t.nodeId})` : ''}: ${t.text}\n`);
    for (const m of written.missing) io.err(`error: output not delivered: ${m}\n`);
    const took = status.completed_at !== null ? ` in ${(status.completed_at - status.created_at).toFixed(1)} s` : '';
    io.err(`job ${status.job_id}: completed${took}, ${written.files.length} file(s) in ${outDir}\n`);
    return written.missing.length > 0 ? EXIT.jobFailed : EXIT.done;
  }
  // The worker's message as it gave it; ComfyUI's own details (node errors, the failing node) below.
  io.err(
    `job ${status.job_id}: ${status.status}${status.error_code ? ` (${status.error_code})` : ''}: ${status.error ?? 'no reason given'}\n`,
  );
  if (status.error_details !== undefined && status.error_details !== null) {
    io.err(`details: ${JSON.stringify(status.error_details, null, 2)}\n`);
  }
  return EXIT.jobFailed;
}

export interface SubmitOptions extends SubmitInput {
  url: string;
  apiKey?: string | undefined;
  out: string;
  timeoutS?: number | undefined;
}

export async function submit(opts: SubmitOptions, io: Io): Promise<ExitCode> {
  const body = buildRunBody(opts);
  const client = new WorkerClient({ url: opts.url, apiKey: opts.apiKey });
  const deadline = opts.timeoutS !== undefined ? Date.now() + opts.timeoutS * 1000 : Infinity;
  const id = await client.submit(body);
  io.err(`job ${id}: submitted to ${opts.url}\n`);
  const types = classTypesOf(body.input.workflow_json);
  const view = io.tty ? new BarProgress(id, types, io.errStream) : new LineProgress(id, types, io.err);
  let end: Awaited<ReturnType<typeof follow>>;
  try {
    end = await follow(client, id, view, deadline, io.interrupt);
  } finally {
    view.stop();
  }
  if (end === 'timeout' || end === 'interrupted') {
    // Nobody will collect the result: free the GPU.
    const why = end === 'timeout' ? `--timeout ${opts.timeoutS} s passed` : 'interrupted';
    try {
      const answer = await client.cancel(id);
      io.err(`job ${id}: ${why}; ${answer.message ?? 'cancelled'}\n`);
    } catch (err) {
      io.err(`job ${id}: ${why}; cancelling it failed: ${(err as Error).message}\n`);
    }
    return end === 'timeout' ? EXIT.timeout : EXIT.interrupted;
  }
  return finish(client, end, opts.out, io);
}
