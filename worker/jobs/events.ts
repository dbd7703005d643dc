// What happens to jobs, for whoever needs to react: waiting HTTP requests, webhooks, metrics, the
// Vast door's reports. One emitter per worker, passed to whoever emits or listens.
import { EventEmitter } from 'node:events';
import type { ComfyEvent } from '../comfy/types';
import type { JobProgress, JobRecord } from './types';

export interface JobEventMap {
  submitted: [JobRecord];
  started: [JobRecord];
  progress: [JobRecord, JobProgress];
  /** Every websocket event of the job's prompt (the benchmark counts sampler steps with it). */
  comfyEvent: [JobRecord, ComfyEvent];
  /** The job reached completed, failed or cancelled; the record is its final state. */
  finished: [JobRecord];
}

export class JobEvents extends EventEmitter<JobEventMap> {
  constructor() {
    super();
    // Listeners are few and long-lived (doors, delivery, metrics); waiters are kept elsewhere.
    this.setMaxListeners(50);
  }
}
