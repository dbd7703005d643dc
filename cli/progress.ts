// Shows a job's progress while the CLI waits: a bar when stderr is a terminal, plain lines
// otherwise (one per change of queue position or node, and at most one a second for steps).
import cliProgress from 'cli-progress';
import type { StatusBody } from './client';

export interface ProgressView {
  update(status: StatusBody): void;
  stop(): void;
}

interface Described {
  phase: string;
  percentage: number;
  /** What changes the line: queue position or node. */
  key: string;
  detail: string;
}

/** Describes a /status body; `classTypes` names the nodes of a workflow file. */
export function describe(status: StatusBody, classTypes: Record<string, string>): Described {
  if (status.status === 'pending') {
    const pos = status.queue_position;
    const detail = pos === undefined ? '' : pos === 0 ? 'next in the queue' : `position ${pos} in the queue`;
    return { phase: 'queued', percentage: 0, key: `queued:${pos}`, detail };
  }
  if (status.status !== 'running') return { phase: status.status, percentage: 100, key: status.status, detail: '' };
  const p = status.progress;
  const parts: string[] = [];
  let key = 'running';
  if (p?.current_node) {
    const type = classTypes[p.current_node];
    parts.push(`node ${p.current_node}${type ? ` (${type})` : ''}`);
    key += `:${p.current_node}`;
  }
  if (p?.total_nodes) parts.push(`${p.completed_nodes ?? 0}/${p.total_nodes} nodes done`);
  const step = p?.current_node_progress;
  if (step && step.max > 0) parts.push(`step ${step.value}/${step.max}`);
  return { phase: 'running', percentage: Math.round(p?.percentage ?? 0), key, detail: parts.join(', ') };
}

export class LineProgress implements ProgressView {
  private lastKey = '';
  private lastLine = '';
  private lastAt = 0;

  constructor(
    private readonly jobId: string,
    private readonly classTypes: Record<string, string>,
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  update(status: StatusBody): void {
    // How the job ended is the caller's line.
    if (status.status !== 'pending' && status.status !== 'running') return;
    const d = describe(status, this.classTypes);
    const line =
      d.phase === 'queued'
        ? `job ${this.jobId}: queued${d.detail ? `, ${d.detail}` : ''}`
        : `job ${this.jobId}: ${d.phase} ${d.percentage}%${d.detail ? `, ${d.detail}` : ''}`;
    if (line === this.lastLine) return;
    // Steps move often: a new line for them at most once a second; a new node or position at once.
    if (d.key === this.lastKey && this.now() - this.lastAt < 1000) return;
    this.lastKey = d.key;
    this.lastLine = line;
    this.lastAt = this.now();
    this.write(`${line}\n`);
  }

  stop(): void {}
}

export class BarProgress implements ProgressView {
  private readonly bar: cliProgress.SingleBar;
  private started = false;

  constructor(
    private readonly jobId: string,
    private readonly classTypes: Record<string, string>,
    stream: NodeJS.WriteStream,
  ) {
    this.bar = new cliProgress.SingleBar(
      {
        stream,
        format: 'job {job} {phase} |{bar}| {percentage}% {detail}',
        hideCursor: true,
        clearOnComplete: false,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(status: StatusBody): void {
    const d = describe(status, this.classTypes);
    const payload = { job: this.jobId.slice(0, 8), phase: d.phase.padEnd(9), detail: d.detail };
    if (!this.started) {
      this.bar.start(100, d.percentage, payload);
      this.started = true;
    } else this.bar.update(d.percentage, payload);
  }

  stop(): void {
    if (this.started) this.bar.stop();
  }
}
