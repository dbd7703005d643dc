// The seam between the job logic and where jobs are kept. Asynchronous, so a store across the
// network (Redis) can sit behind it as well as the embedded SQLite one. Everything in jobs/ works against this
// interface; a backend (jobs/sqlite/ today) implements it together with its webhook outbox, so
// that ending a job and arming its webhook are one atomic step. Nothing above jobs/ sees it.
import type { KeptFile, OutputSink } from '../delivery/types';
import type { ErrorBody } from '../errors';
import type { WebhookOutbox } from '../webhooks/outbox';
import type { JobFiles } from './files';
import type { JobProgress, JobRecord, JobResult, JobSecrets, JobStatus, NewJob } from './types';

export type StatusCounts = Record<JobStatus, number>;

/** A job's summary without its spec or result. */
export interface RecentJob {
  id: string;
  status: JobStatus;
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
  error: ErrorBody | null;
}

/** An output kept for inline answers: its file, or (rows stored before files) its bytes. */
export type StoredFile = { size: number; path: string } | { size: number; bytes: Buffer };

/** What processes sharing one store tell each other. */
export type StoreMessage =
  /** A job ended (the process that ended it publishes it, for callers waiting elsewhere). */
  | { type: 'finished'; jobId: string }
  /** A job was stored or put back: idle runners look at the queue. */
  | { type: 'queued'; jobId: string }
  /** A job left running on this backend is due again (`due`, epoch ms): its runners take it then. */
  | { type: 'leftover'; jobId: string; backend: string; due: number }
  /** Stop this running job, wherever it runs. */
  | { type: 'cancel'; jobId: string; error: ErrorBody };

export interface JobStore {
  /**
   * Several worker processes share this store (Redis): jobs run and end elsewhere too, so
   * cancels and ends travel as messages, progress is kept in the store, and a job left running
   * by a process that died comes back through claimNext rather than through running().
   */
  readonly shared: boolean;
  /** The final webhook deliveries of this store's jobs. */
  readonly webhooks: WebhookOutbox;
  /** The folder of the jobs' files: input images until their job ends, outputs kept for inline answers. */
  readonly files: JobFiles;
  /** Which backend and where, for /health. */
  describe(): { backend: string; path: string };
  /** Now, in epoch seconds, by the store's clock. */
  now(): number;
  /**
   * Stores a new pending job. A second job with the same id is a 409. Its input images end up in
   * files (spooled ones are adopted, text ones written), never in the record.
   */
  insert(job: NewJob): Promise<JobRecord>;
  get(id: string): Promise<JobRecord | undefined>;
  /** The job's credentials, while it is not finished. */
  secretsOf(id: string): Promise<JobSecrets>;
  /**
   * Atomically marks the oldest pending job running with the given prompt id, on this backend.
   * A shared store may instead hand back a job a dead process left running: it keeps its old
   * prompt id (not the one given), to be reconciled with ComfyUI before anything is resubmitted
   * (one whose prompt was never sent comes as a fresh claim, with the given prompt id).
   */
  claimNext(promptId: string, backend?: string): Promise<JobRecord | undefined>;
  /**
   * Ends a pending or running job and arms its webhook. Returns false if it had already ended
   * (first writer wins). The outputs kept for inline delivery (files in the job's outputs folder)
   * are recorded with it; its input files, and kept outputs of a job that did not complete, are
   * deleted. `at` (epoch s, default now) is its completed_at, so a caller can build the final record
   * without reading it.
   */
  finish(
    id: string,
    status: Exclude<JobStatus, 'pending' | 'running'>,
    outcome: { result?: JobResult; error?: ErrorBody; files?: KeptFile[]; at?: number },
  ): Promise<boolean>;
  /**
   * Its prompt is about to be sent to ComfyUI (POST /prompt): from now on it may run there. A
   * shared store records it, so a worker taking the job over from one that died knows whether a
   * rerun is safe; it throws (and the prompt is not sent) if that cannot be recorded or the job
   * has been taken over meanwhile. A no-op when not shared (recovery asks the same ComfyUI).
   */
  markPromptSent(job: JobRecord): Promise<void>;
  /** A running job's work started now (its prompt left ComfyUI's queue): its started_at. */
  markStarted(id: string, at: number): Promise<void>;
  /** Cancels a job only if it has not started; false otherwise. */
  cancelPending(id: string, error: ErrorBody): Promise<boolean>;
  /**
   * A job claimNext handed back as left running, that cannot be reconciled now: it stays running
   * with its prompt id, for a later claim to look at again (a no-op when not shared: such jobs
   * come from running(), which is read again).
   */
  putBack(id: string): Promise<void>;
  /** Puts a job a previous process left running back at its place in the queue. */
  requeue(id: string): Promise<boolean>;
  /** The latest jobs, newest first. */
  recent(limit: number): Promise<RecentJob[]>;
  /** Deletes ended jobs that ended before `cutoff` (epoch s) and have no delivery left to make. */
  deleteFinishedBefore(cutoff: number): Promise<number>;
  /**
   * Ends what no runner would end well (a shared store: jobs whose submission was interrupted
   * between its steps, synchronous jobs whose caller's worker is gone); how many. Called by the
   * upkeep each pass. 0 when there is nothing of the kind (SQLite: one transaction, one process).
   */
  repair(): Promise<number>;
  /** Jobs running since before `cutoff` (epoch s). */
  runningSince(cutoff: number): Promise<JobRecord[]>;
  /** The job has a webhook that is not delivered yet (nor given up on). */
  hasUndeliveredWebhook(id: string): Promise<boolean>;
  /** Deletes one job if it has ended (its files too); false if it is pending, running or unknown. */
  deleteFinished(id: string): Promise<boolean>;
  /** A job's output kept for inline delivery. */
  file(id: string, index: number): Promise<StoredFile | undefined>;
  /** Where the running job's outputs kept for inline delivery are written. */
  outputSink(job: JobRecord): OutputSink;
  /** Deletes files no job refers to (left by a crash); how many. */
  sweepFiles(): Promise<number>;
  /** How many pending jobs are ahead of this one. */
  queuePosition(job: JobRecord): Promise<number>;
  pendingCount(): Promise<number>;
  counts(): Promise<StatusCounts>;
  /** Jobs a previous process left running. */
  running(): Promise<JobRecord[]>;
  /** Pending jobs whose caller waits on an open connection. */
  pendingSync(): Promise<JobRecord[]>;
  /** A running job's progress, kept for the other processes (a no-op when not shared). */
  saveProgress(id: string, progress: JobProgress): Promise<void>;
  /** A running job's progress as its process last saved it (undefined when not shared). */
  progressOf(id: string): Promise<JobProgress | undefined>;
  /** Tells every process sharing the store, this one too (a no-op when not shared). */
  publish(message: StoreMessage): Promise<void>;
  /** Messages published by any process sharing the store. */
  onMessage(listener: (message: StoreMessage) => void): void;
  close(): Promise<void>;
}
