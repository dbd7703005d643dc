// Opens the job store the configuration asks for: SQLite on this machine by default, or Redis
// (BullMQ) shared by every worker pointed at it when JOB_QUEUE_URL is set. Nothing outside jobs/
// changes with the choice.
import type { Logger } from '../observability/logger';
import type { SecretBox } from '../secrets/secret-box';
import { filesFolderOf } from './files';
import type * as RedisStoreModule from './redis/store';
import { SqliteJobStore } from './sqlite/store';
import type { JobStore } from './store';

export interface StoreSettings {
  /** SQLITE_DB_PATH (with Redis, its folder holds the outputs of running jobs until they end). */
  dbPath: string;
  /** JOB_QUEUE_URL, with how it may be shown (no password). */
  queue?: {
    url: string;
    shownAs: string;
    lockS: number;
    inlineMaxBytes: number;
    nodeId: string;
    /** JOB_QUEUE_WEBHOOK_LEASE_S */
    webhookLeaseS?: number;
    /** JOB_QUEUE_TAKEOVER_S */
    takeoverS: number;
  };
  secrets: SecretBox;
  logger: Logger;
  /** Milliseconds since the epoch (tests control time with it). */
  clock?: () => number;
}

export function openJobStore(settings: StoreSettings): JobStore {
  const { queue } = settings;
  if (queue) {
    // Loaded only when asked for: ioredis and BullMQ would otherwise be a fifth of an SQLite
    // worker's memory at rest.
    const { RedisJobStore } = require('./redis/store') as typeof RedisStoreModule;
    return new RedisJobStore({
      url: queue.url,
      shownAs: queue.shownAs,
      secrets: settings.secrets,
      filesPath: filesFolderOf(settings.dbPath),
      lockMs: queue.lockS * 1000,
      inlineMaxBytes: queue.inlineMaxBytes,
      nodeId: queue.nodeId,
      webhookLeaseS: queue.webhookLeaseS,
      takeoverMs: queue.takeoverS * 1000,
      logger: settings.logger,
      clock: settings.clock,
    });
  }
  return new SqliteJobStore({ path: settings.dbPath, secrets: settings.secrets, clock: settings.clock });
}
