// Webhook bodies. One envelope for every door; `output` is in the shape of the door the job came
// through (each door supplies a renderer), so a client reads a webhook like the answer it would
// have got:
//   {"event": "completed"|"failed"|"cancelled"|"progress", "id", "status", "message", "output",
//    "error"?, "timings"?, "progress"?, "extra"?, "timestamp"}
import type { ErrorBody } from '../errors';

/** What a webhook needs to know of a job (a job record has more). */
export interface WebhookJob {
  id: string;
  status: string;
  error: ErrorBody | null;
}

export interface WebhookBody {
  event: 'completed' | 'failed' | 'cancelled' | 'progress';
  id: string;
  status: string;
  message?: string;
  output?: unknown;
  error?: ErrorBody;
  timings?: Record<string, number>;
  progress?: unknown;
  extra?: Record<string, unknown>;
  /** Unix seconds when this attempt was sent; signed with the body so receivers can refuse replays. */
  timestamp: number;
}

/** How a contract presents a finished job: its message, its outputs (base64 inlined), its timings. */
export interface ContractView {
  message: string;
  output: unknown;
  timings?: Record<string, number>;
}

export type ContractRenderer<J extends WebhookJob> = (job: J) => ContractView | Promise<ContractView>;

export async function finalBody<J extends WebhookJob>(
  job: J,
  extra: Record<string, unknown>,
  render: ContractRenderer<J>,
  nowS: number,
): Promise<WebhookBody> {
  const view = await render(job);
  const body: WebhookBody = {
    event: job.status === 'completed' ? 'completed' : job.status === 'cancelled' ? 'cancelled' : 'failed',
    id: job.id,
    status: job.status,
    message: view.message,
    output: view.output,
    timestamp: Math.floor(nowS),
  };
  if (view.timings) body.timings = view.timings;
  if (job.error) body.error = job.error;
  if (Object.keys(extra).length > 0) body.extra = extra;
  return body;
}

export function progressBody(job: WebhookJob, progress: unknown, extra: Record<string, unknown>, nowS: number): WebhookBody {
  const body: WebhookBody = { event: 'progress', id: job.id, status: 'processing', progress, timestamp: Math.floor(nowS) };
  if (Object.keys(extra).length > 0) body.extra = extra;
  return body;
}
