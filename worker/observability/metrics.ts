// Prometheus metrics on one registry per worker (no process-wide default registry). A leaf: it
// imports nothing of the worker. The core feeds it (job events, webhook and S3 results, websocket
// reconnects) and gives it functions to read the gauges from when /metrics is scraped. Label
// values are bounded: doors, contracts, statuses, results, backends (configured), never job ids.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Where the gauges read their values, at scrape time. */
export interface MetricsSources {
  /** Jobs pending or running. */
  queueDepth(): Promise<number>;
  /** Each ComfyUI backend and whether its websocket is open. */
  comfyUp(): Array<{ backend: string; up: boolean }>;
  /** Final webhook deliveries by state. */
  webhookStates(): Promise<Record<string, number>>;
}

/** Labels of a job: the door that accepted it and the contract it is answered in. */
export interface JobLabels {
  source: string;
  contract: string;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly jobsSubmitted: Counter<'source' | 'contract'>;
  private readonly jobsFinished: Counter<'source' | 'contract' | 'status'>;
  private readonly jobDuration: Histogram<'source' | 'contract' | 'status'>;
  private readonly webhookAttempts: Counter<'result'>;
  private readonly s3Uploads: Counter<'result'>;
  private readonly reconnects: Counter<'backend'>;
  /** The Vast door's benchmark score, read at scrape time once a door says where. */
  private readBenchmark: (() => number | undefined) | undefined;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    // The process: CPU, memory, heap, event-loop lag, handles, open files, GC.
    collectDefaultMetrics({ register: this.registry });
    this.s3Uploads = new Counter({
      name: 'comfyui_worker_s3_uploads_total',
      help: 'Output files sent to S3, by result (uploaded, failed)',
      labelNames: ['result'],
      registers,
    });
    this.reconnects = new Counter({
      name: 'comfyui_worker_websocket_reconnects_total',
      help: "Times a ComfyUI backend's websocket came back after it was lost",
      labelNames: ['backend'],
      registers,
    });
    // Read at scrape time, from wherever the door that runs the benchmark says.
    const benchmark: Gauge = new Gauge({
      name: 'comfyui_worker_benchmark_max_perf',
      help: 'The startup benchmark score (max_perf, workload per second) the Vast door reports; absent elsewhere',
      registers,
      collect: () => {
        const score = this.readBenchmark?.();
        if (score !== undefined) benchmark.set(score);
      },
    });
    this.jobsSubmitted = new Counter({
      name: 'comfyui_worker_jobs_submitted_total',
      help: 'Jobs accepted',
      labelNames: ['source', 'contract'],
      registers,
    });
    this.jobsFinished = new Counter({
      name: 'comfyui_worker_jobs_finished_total',
      help: 'Jobs that reached a terminal state',
      labelNames: ['source', 'contract', 'status'],
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'comfyui_worker_job_duration_seconds',
      help: 'From start of execution to the terminal state',
      labelNames: ['source', 'contract', 'status'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.webhookAttempts = new Counter({
      name: 'comfyui_worker_webhook_attempts_total',
      help: 'Final webhook delivery attempts by result (delivered, retrying, failed)',
      labelNames: ['result'],
      registers,
    });
    new Gauge({
      name: 'comfyui_worker_webhooks',
      help: 'Final webhook deliveries by state (waiting for the job, pending, delivered, failed)',
      labelNames: ['state'],
      registers,
      async collect() {
        for (const [state, n] of Object.entries(await sources.webhookStates())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'comfyui_worker_queue_depth',
      help: 'Jobs pending or running',
      registers,
      async collect() {
        this.set(await sources.queueDepth());
      },
    });
    new Gauge({
      name: 'comfyui_worker_comfy_up',
      help: "1 when the ComfyUI backend's websocket is open and its GPU has not faulted",
      labelNames: ['backend'],
      registers,
      collect() {
        for (const { backend, up } of sources.comfyUp()) this.set({ backend }, up ? 1 : 0);
      },
    });
  }

  jobSubmitted(job: JobLabels): void {
    this.jobsSubmitted.inc({ source: job.source, contract: job.contract });
  }

  /** @param seconds from the start of execution, when the job started */
  jobFinished(job: JobLabels, status: string, seconds: number | undefined): void {
    const labels = { source: job.source, contract: job.contract, status };
    this.jobsFinished.inc(labels);
    if (seconds !== undefined) this.jobDuration.observe(labels, seconds);
  }

  webhookAttempt(result: 'delivered' | 'retrying' | 'failed'): void {
    this.webhookAttempts.inc({ result });
  }

  s3Upload(result: 'uploaded' | 'failed'): void {
    this.s3Uploads.inc({ result });
  }

  websocketReconnected(backend: string): void {
    this.reconnects.inc({ backend });
  }

  /** Where the benchmark score is read from (the door that runs the benchmark says). */
  benchmarkScore(read: () => number | undefined): void {
    this.readBenchmark = read;
  }

  /** The text exposition format, for GET /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
