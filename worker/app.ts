// Starts a worker: builds the core, opens the front door for the mode, starts the runner, and
// returns a handle that stops everything in order.
import type { ComfyClient } from './comfy/client';
import type { Config } from './config';
import { buildCore, doorContext, type CoreOptions } from './core';
import { DOORS } from './doors';
import { ConfigError, WorkerError } from './errors';
import type { JobEvents } from './jobs/events';
import type { JobQueue } from './jobs/queue';
import { cancelOrphanedSyncJobs } from './jobs/recovery';
import type { RunnerPool } from './jobs/runner-pool';
import type { JobStore } from './jobs/store';
import type { Upkeep } from './jobs/upkeep';
import { exposedMinorGc } from './util/transfer-gc';

/** How long a stopping worker lets webhook attempts in flight record their outcome. */
const WEBHOOK_FLUSH_MS = 5_000;

export type WorkerOptions = CoreOptions;

/** The in-process handle of a started worker: its parts, for tests and tools in the same process. */
export interface RunningWorker {
  /** The door's base URL, e.g. http://127.0.0.1:8000 */
  url: string;
  queue: JobQueue;
  runner: RunnerPool;
  comfy: ComfyClient;
  events: JobEvents;
  store: JobStore;
  upkeep: Upkeep;
  stop(): Promise<void>;
}

export async function startWorker(config: Config, opts: WorkerOptions = {}): Promise<RunningWorker> {
  const startDoor = DOORS[config.mode];
  if (!startDoor) throw new ConfigError(`WORKER_MODE=${config.mode} is not available in this build yet`);
  const core = buildCore(config, opts);
  let door;
  try {
    // Before the door opens, so no new synchronous job is mistaken for an orphan.
    await cancelOrphanedSyncJobs(core.store, core.events, core.logger);
    door = await startDoor(doorContext(core));
  } catch (err) {
    for (const backend of core.backends) backend.close();
    await core.store.close();
    throw err;
  }
  core.webhooks.sender.start();
  core.webhooks.progress.start();
  // The runner reconciles jobs a previous process left running before it takes a new one. An
  // api-only worker runs nothing: runner workers take its jobs from the shared queue.
  if (config.jobs.role !== 'api') core.runner.start();
  core.upkeep.start();
  core.logger.info(
    {
      url: door.url,
      mode: config.mode,
      role: config.jobs.role,
      comfyui: config.jobs.role === 'api' ? undefined : config.comfy.baseUrls.join(','),
      jobs: core.queue.storeInfo().path,
      // Whether large transfers collect their dead buffers as they go (worker/util/transfer-gc.ts).
      exposedGc: exposedMinorGc() !== undefined,
    },
    'worker started',
  );

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      const { logger } = core;
      core.upkeep.stop();
      // Admit nothing more (503 with Retry-After) and answer the callers whose jobs were not
      // taken yet; take no new job, and give the ones in flight SHUTDOWN_GRACE_S to finish.
      try {
        await core.queue.close();
      } catch (err) {
        // An unusable database must not keep the rest of the stop from happening.
        logger.error({ err }, 'could not answer the waiting callers while stopping');
      }
      core.runner.pause();
      await door.drain?.();
      const graceS = config.jobs.shutdownGraceS;
      await core.runner.stop(graceS * 1000);
      const left = core.runner.runningJobIds;
      if (left.length > 0) {
        logger.warn(
          { jobIds: left, graceS },
          'stopping with jobs still running (SHUTDOWN_GRACE_S passed): left as they are, the next start recovers them',
        );
      }
      core.queue.releaseWaiters(
        new WorkerError(503, 'worker_stopping', 'The worker stopped before the job finished; it is kept for the next start', {
          headers: { 'Retry-After': '5' },
        }),
      );
      await door.stop();
      core.webhooks.progress.stop();
      await core.webhooks.sender.flush(WEBHOOK_FLUSH_MS);
      core.s3Clients.destroy();
      for (const backend of core.backends) backend.close();
      await core.store.close();
      logger.info({ leftRunning: left.length }, 'worker stopped');
    })());
  return {
    url: door.url,
    queue: core.queue,
    runner: core.runner,
    comfy: core.comfy,
    events: core.events,
    store: core.store,
    upkeep: core.upkeep,
    stop,
  };
}
