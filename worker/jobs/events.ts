// What happens to jobs, for whoever needs to react: waiting HTTP requests, webhooks, metrics, the
// Vast door's reports. One emitter per worker, passed to whoever emits or listens.
import { EventEmitter } from 'node:events';
import type { ComfyEvent } from '../comfy/types';
import type { JobProgress, JobRecord } from './types';

export interface JobEventMap {
  submitted: [JobRecord];
  /** A runner took the job from the queue (the jobs behind it move up). */
  taken: [JobRecord];
  started: [JobRecord];
  progress: [JobRecord, JobProgress];
  /** Every websocket event of the job's prompt (the benchmark counts sampler steps with it). */
  comfyEvent: [JobRecord, ComfyEvent];
  /**
   * The job completed and its outputs are delivered; its row is written next, before the worker
   * reads another request (see Runner). Only for the callers waiting on their connection, whom
   * it answers a step sooner; everything else listens to `finished`.
   */
  completing: [JobRecord];
  /** The job reached completed, failed or cancelled; the record is its final state. */
  finished: [JobRecord];
}

export class JobEvents extends EventEmitter<JobEventMap> {
  private readonly onListenerError: (err: unknown, event: string) => void;

  /** @param onListenerError told when a listener throws (the others still run). */
  constructor(onListenerError: (err: unknown, event: string) => void = () => undefined) {
    super();
    this.onListenerError = onListenerError;
    // Listeners are few and long-lived (doors, delivery, metrics); waiters are kept elsewhere.
    this.setMaxListeners(50);
  }

  /**
   * Calls every listener even if one throws: an observer (a webhook, a metric) must never break
   * the job it observes, nor the runner or websocket that reports the event.
   */
  override emit<K extends keyof JobEventMap>(event: K, ...args: JobEventMap[K]): boolean {
    // rawListeners keeps `once` wrappers, which remove themselves when called.
    const listeners = this.rawListeners(event) as Array<(...a: JobEventMap[K]) => void>;
    for (const listener of listeners) {
      try {
        listener(...args);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
    return listeners.length > 0;
  }
}

/** The events as observers see them: they may listen, never emit. */
export type JobEventSource = Pick<JobEvents, 'on' | 'off' | 'once'>;
