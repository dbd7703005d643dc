// Prometheus metrics on one registry per worker (no process-wide default registry), fed by job
// events. Exposed on GET /metrics.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ComfyClient } from '../comfy/client';
import type { JobEvents } from '../jobs/events';
import type { WebhookOutbox } from '../webhooks/outbox';
import type { JobStore } from '../jobs/sqlite/store';

export class Metrics {
  readonly registry = new Registry();
  readonly jobsSubmitted: Counter<'door'>;
  readonly jobsFinished: Counter<'door' | 'status'>;
  readonly jobDuration: Histogram<'door' | 'status'>;
  readonly webhookDeliveries: Counter<'result'>;

  constructor(deps: { events: JobEvents; store: JobStore; comfy: ComfyClient; outbox: WebhookOutbox }) {
    const registers = [this.registry];
    this.jobsSubmitted = new Counter({
      name: 'comfyui_worker_jobs_submitted_total',
      help: 'Jobs accepted',
      labelNames: ['door'],
      registers,
    });
    this.jobsFinished = new Counter({
      name: 'comfyui_worker_jobs_finished_total',
      help: 'Jobs that reached a terminal state',
      labelNames: ['door', 'status'],
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'comfyui_worker_job_duration_seconds',
      help: 'From start of execution to the terminal state',
      labelNames: ['door', 'status'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.webhookDeliveries = new Counter({
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
      collect() {
        for (const [state, n] of Object.entries(deps.outbox.counts())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'comfyui_worker_queue_depth',
      help: 'Jobs pending or running',
      registers,
      collect() {
        const counts = deps.store.counts();
        this.set(counts.pending + counts.running);
      },
    });
    new Gauge({
      name: 'comfyui_worker_comfy_up',
      help: '1 when the ComfyUI websocket is open',
      registers,
      collect() {
        this.set(deps.comfy.isReady ? 1 : 0);
      },
    });
    deps.events.on('submitted', (job) => this.jobsSubmitted.inc({ door: job.door }));
    deps.events.on('finished', (job) => {
      this.jobsFinished.inc({ door: job.door, status: job.status });
      if (job.startedAt !== null && job.completedAt !== null) {
        this.jobDuration.observe({ door: job.door, status: job.status }, job.completedAt - job.startedAt);
      }
    });
  }
}
