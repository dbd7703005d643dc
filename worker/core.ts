// The core every door stands on: the ComfyUI client, the job store, runner and queue, upkeep,
// webhooks and metrics. Built from the configuration; nothing runs until app.ts starts it. Doors
// get a narrow view of it (doorContext), never the core itself.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { ComfyClient } from './comfy/client';
import { redactUrl, type Config } from './config';
import { contractOf } from './contracts';
import type { ContractContext } from './contracts/context';
import { ModifierRegistry } from './contracts/wrapper/modifiers';
import { S3Clients, preloadS3Sdk, resolveS3Destination, s3Defaults } from './delivery/s3';
import type { DoorContext } from './doors/door';
import { backendStatus, queueOnlyStatus } from './jobs/backend';
import { JobEvents } from './jobs/events';
import { createExecutor, type DeliveryDeps } from './jobs/execute';
import { openJobStore } from './jobs/open-store';
import { JobQueue } from './jobs/queue';
import { createRecovery } from './jobs/recovery';
import { Runner } from './jobs/runner';
import { RunnerPool } from './jobs/runner-pool';
import type { JobStore } from './jobs/store';
import type { JobRecord } from './jobs/types';
import { Upkeep } from './jobs/upkeep';
import { createOutboundClient } from './net/outbound';
import { createLogger, type Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { SecretBox } from './secrets/secret-box';
import { ProgressNotifier } from './webhooks/progress';
import { WebhookSender } from './webhooks/sender';

export interface CoreOptions {
  logger?: Logger;
  /** Milliseconds since the epoch (tests control time with it). */
  clock?: () => number;
}

export interface Core {
  config: Config;
  logger: Logger;
  /** The first backend's client (what a single-GPU worker has). */
  comfy: ComfyClient;
  /** One client per backend (COMFYUI_API_BASE lists one ComfyUI per GPU). */
  backends: ComfyClient[];
  store: JobStore;
  events: JobEvents;
  runner: RunnerPool;
  queue: JobQueue;
  upkeep: Upkeep;
  metrics: Metrics;
  contracts: ContractContext;
  webhooks: { sender: WebhookSender<JobRecord>; progress: ProgressNotifier };
  s3Clients: S3Clients;
}

export function buildCore(config: Config, opts: CoreOptions = {}): Core {
  const logger = opts.logger ?? createLogger(config.log.level);
  const secrets = SecretBox.open({
    key: config.jobs.secretsKey,
    keyFile: config.jobs.secretsKeyFile ?? path.join(path.dirname(config.jobs.dbPath), 'job-secrets.key'),
  });
  const { queueUrl } = config.jobs;
  const store = openJobStore({
    dbPath: config.jobs.dbPath,
    queue: queueUrl
      ? {
          url: queueUrl,
          shownAs: redactUrl(queueUrl),
          lockS: config.jobs.queueLockS,
          inlineMaxBytes: config.jobs.queueInlineMaxBytes,
          nodeId: config.jobs.nodeId,
          webhookLeaseS: config.jobs.queueWebhookLeaseS,
          takeoverS: config.jobs.queueTakeoverS,
        }
      : undefined,
    secrets,
    logger,
    clock: opts.clock,
  });
  const backends = config.comfy.baseUrls.map(
    (baseUrl) =>
      new ComfyClient({
        baseUrl,
        clientId: randomUUID(),
        reconnectAttempts: config.comfy.reconnectAttempts,
        reconnectDelayMs: config.comfy.reconnectDelayS * 1000,
        websocketTrace: config.comfy.websocketTrace,
        historyPollMs: config.comfy.historyPollIntervalS * 1000,
        logger: backendLogger(logger, baseUrl, config.comfy.baseUrls.length),
      }),
  );
  const comfy = backends[0]!;
  const inputs = {
    allowPrivateUrls: config.inputs.allowPrivateUrls,
    downloadMaxBytes: config.inputs.downloadMaxBytes,
    downloadTimeoutMs: config.inputs.downloadTimeoutS * 1000,
  };
  const metrics = new Metrics({
    queueDepth: async () => {
      const counts = await store.counts();
      return counts.pending + counts.running;
    },
    // An api-only worker has no ComfyUI of its own.
    comfyUp: () => (config.jobs.role === 'api' ? [] : backends.map((b) => ({ backend: b.baseUrl, up: b.isReady }))),
    webhookStates: () => store.webhooks.counts(),
  });
  const defaults3 = s3Defaults(config.s3);
  // Uploads by default: the AWS SDK is loaded now rather than on the first job's path.
  if (resolveS3Destination(defaults3, undefined, {})) preloadS3Sdk();
  const s3Clients = new S3Clients({
    connectTimeoutMs: config.s3.connectTimeoutS * 1000,
    attempts: config.s3.attempts,
    presignExpiresS: config.s3.presignExpiresS,
    allowPrivate: config.inputs.allowPrivateUrls,
    onUpload: (result) => metrics.s3Upload(result),
  });
  const events = new JobEvents((err, event) => logger.error({ err, event }, 'a job event listener failed'));
  const outbound = createOutboundClient({ allowPrivate: config.inputs.allowPrivateUrls });
  // One runner per backend; each collects and delivers outputs through its own ComfyUI.
  const runner = new RunnerPool(config.comfy.baseUrls, (baseUrl, siblings) => {
    const client = backends.find((b) => b.baseUrl === baseUrl) ?? comfy;
    const delivery: DeliveryDeps = {
      comfy: client,
      maxInlineBytes: config.outputs.base64MaxBytes,
      outputFolders: config.outputs.folders,
      s3Defaults: defaults3,
      s3Clients,
      outputSink: (job) => store.outputSink(job),
      logger,
      clock: opts.clock,
    };
    return new Runner({
      store,
      comfy: client,
      execute: createExecutor({
        ...delivery,
        outbound,
        inputs,
        orgApiKey: config.comfy.orgApiKey,
        markPromptSent: (job) => store.markPromptSent(job),
      }),
      events,
      logger: backendLogger(logger, baseUrl, config.comfy.baseUrls.length),
      jobTimeoutMs: config.jobs.timeoutS * 1000,
      queueAhead: config.jobs.queueAhead,
      readyTimeoutMs: config.comfy.readyTimeoutS * 1000,
      recovery: createRecovery({ ...delivery, jobTimeoutMs: config.jobs.timeoutS * 1000 }),
      siblings: config.comfy.baseUrls.length > 1 ? siblings : undefined,
    });
  });
  const queue = new JobQueue({ store, runner, events, maxQueueSize: config.jobs.maxQueueSize });
  const upkeep = new Upkeep({
    store,
    runner,
    logger,
    intervalS: config.upkeep.intervalS,
    retentionHours: config.upkeep.retentionHours,
    stuckHours: config.upkeep.stuckHours,
    // Only a shared store has anything to repair (SQLite's repair() is a no-op).
    repairIntervalS: store.shared ? config.jobs.queueLockS : undefined,
  });

  events.on('submitted', (job) => metrics.jobSubmitted(job));
  events.on('finished', (job) => {
    const ran = job.startedAt !== null && job.completedAt !== null;
    metrics.jobFinished(job, job.status, ran ? (job.completedAt ?? 0) - (job.startedAt ?? 0) : undefined);
  });
  for (const backend of backends) backend.session.on('reconnected', () => metrics.websocketReconnected(backend.baseUrl));

  const webhookClient = createOutboundClient({ allowPrivate: config.inputs.allowPrivateUrls });
  const webhooks = {
    sender: new WebhookSender<JobRecord>({
      outbox: store.webhooks,
      store,
      events,
      client: webhookClient,
      policy: { retries: config.webhooks.retries, baseS: config.webhooks.backoffS, maxS: config.webhooks.maxBackoffS },
      timeoutS: config.webhooks.timeoutS,
      envSecret: config.webhooks.secret,
      // A webhook shows a job the way its contract answers it.
      render: async (job) => contractOf(job.contract).webhookView(job, await queue.inlineData(job)),
      logger,
      onResult: (result) => metrics.webhookAttempt(result),
      // Jobs ended (or senders lost) on other workers arm deliveries this worker is not told of.
      lookEveryMs: store.shared ? 5_000 : undefined,
    }),
    progress: new ProgressNotifier({
      events,
      outbox: store.webhooks,
      client: webhookClient,
      intervalS: config.webhooks.progressIntervalS,
      envSecret: config.webhooks.secret,
      logger,
      clock: opts.clock,
    }),
  };
  const contracts: ContractContext = {
    modifiers: ModifierRegistry.load(),
    inputs,
    delivery: { s3Defaults: defaults3, defaultWebhookUrl: config.webhooks.url, allowPrivateUrls: config.inputs.allowPrivateUrls },
    includeComfyResponse: config.outputs.includeComfyResponse,
  };
  return { config, logger, comfy, backends, store, events, runner, queue, upkeep, metrics, contracts, webhooks, s3Clients };
}

/** What a door may use of the core. */
export function doorContext(core: Core): DoorContext {
  return {
    config: core.config,
    logger: core.logger,
    jobs: core.queue,
    events: core.events,
    upkeep: core.upkeep,
    backend: core.config.jobs.role === 'api' ? queueOnlyStatus() : backendStatus(core.backends),
    contracts: core.contracts,
    metrics: core.metrics,
  };
}

/** With several backends, each one's log lines say which. */
function backendLogger(logger: Logger, baseUrl: string, count: number): Logger {
  return count > 1 ? logger.child({ backend: baseUrl }) : logger;
}
