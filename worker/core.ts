// The core every door stands on: the ComfyUI client, the job store, runner and queue, metrics and
// the shared request context. Built from the configuration; nothing runs until the runner starts.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { ModifierRegistry } from '../modifiers';
import { ComfyClient } from './comfy/client';
import { S3Clients, s3Defaults } from './delivery/s3';
import { WebhookOutbox } from './webhooks/outbox';
import { ProgressNotifier } from './webhooks/progress';
import { WebhookSender } from './webhooks/sender';
import { answerShape } from './doors/shapes';
import { workerComfyView } from './contracts/worker-comfyui/output';
import { wrapperView } from './contracts/wrapper/result';
import type { Config } from './config';
import type { WrapperContext } from './contracts/wrapper/request';
import { JobEvents } from './jobs/events';
import { createExecutor, type DeliveryDeps } from './jobs/execute';
import { JobQueue } from './jobs/queue';
import { createRecovery } from './jobs/recovery';
import { Runner } from './jobs/runner';
import { SecretBox } from './secrets/secret-box';
import { JobStore } from './jobs/sqlite/store';
import { Upkeep } from './jobs/upkeep';
import { createOutboundClient } from './net/outbound';
import { createLogger, type Logger } from './observability/logger';
import { Metrics } from './observability/metrics';

export interface CoreOptions {
  logger?: Logger;
  /** Milliseconds since the epoch (tests control time with it). */
  clock?: () => number;
}

/** Everything a door needs, built once per worker. */
export interface Core {
  config: Config;
  logger: Logger;
  comfy: ComfyClient;
  store: JobStore;
  events: JobEvents;
  runner: Runner;
  queue: JobQueue;
  upkeep: Upkeep;
  metrics: Metrics;
  wrapper: WrapperContext;
  webhooks: { outbox: WebhookOutbox; sender: WebhookSender; progress: ProgressNotifier };
  s3Clients: S3Clients;
}

export function buildCore(config: Config, opts: CoreOptions = {}): Core {
  const logger = opts.logger ?? createLogger(config.log.level);
  const secrets = SecretBox.open({
    key: config.jobs.secretsKey,
    keyFile: config.jobs.secretsKeyFile ?? path.join(path.dirname(config.jobs.dbPath), 'job-secrets.key'),
  });
  const store = new JobStore({ path: config.jobs.dbPath, secrets, clock: opts.clock });
  const comfy = new ComfyClient({
    baseUrl: config.comfy.baseUrl,
    clientId: randomUUID(),
    reconnectAttempts: config.comfy.reconnectAttempts,
    reconnectDelayMs: config.comfy.reconnectDelayS * 1000,
    websocketTrace: config.comfy.websocketTrace,
    historyPollMs: config.comfy.historyPollIntervalS * 1000,
    logger,
  });
  const inputs = {
    allowPrivateUrls: config.inputs.allowPrivateUrls,
    downloadMaxBytes: config.inputs.downloadMaxBytes,
    downloadTimeoutMs: config.inputs.downloadTimeoutS * 1000,
  };
  const defaults3 = s3Defaults(config.s3);
  const s3Clients = new S3Clients({
    connectTimeoutMs: config.s3.connectTimeoutS * 1000,
    attempts: config.s3.attempts,
    presignExpiresS: config.s3.presignExpiresS,
    allowPrivate: config.inputs.allowPrivateUrls,
  });
  // What collecting and delivering outputs needs, for a normal run and for a recovered one.
  const delivery: DeliveryDeps = {
    comfy,
    maxInlineBytes: config.outputs.base64MaxBytes,
    s3Defaults: defaults3,
    s3Clients,
    logger,
    clock: opts.clock,
  };
  const execute = createExecutor({
    ...delivery,
    outbound: createOutboundClient({ allowPrivate: config.inputs.allowPrivateUrls }),
    inputs,
    orgApiKey: config.comfy.orgApiKey,
  });
  const events = new JobEvents((err, event) => logger.error({ err, event }, 'a job event listener failed'));
  const runner = new Runner({
    store,
    comfy,
    execute,
    events,
    logger,
    jobTimeoutMs: config.jobs.timeoutS * 1000,
    readyTimeoutMs: config.comfy.readyTimeoutS * 1000,
    recovery: createRecovery({ ...delivery, jobTimeoutMs: config.jobs.timeoutS * 1000 }),
  });
  const queue = new JobQueue({ store, runner, events, maxQueueSize: config.jobs.maxQueueSize });
  const upkeep = new Upkeep({
    store,
    runner,
    logger,
    intervalS: config.upkeep.intervalS,
    retentionHours: config.upkeep.retentionHours,
    stuckHours: config.upkeep.stuckHours,
  });
  const outbox = new WebhookOutbox(store);
  const metrics = new Metrics({ events, store, comfy, outbox });
  const webhookClient = createOutboundClient({ allowPrivate: config.inputs.allowPrivateUrls });
  const webhooks = {
    outbox,
    sender: new WebhookSender({
      outbox,
      store,
      events,
      client: webhookClient,
      policy: { retries: config.webhooks.retries, baseS: config.webhooks.backoffS, maxS: config.webhooks.maxBackoffS },
      timeoutS: config.webhooks.timeoutS,
      envSecret: config.webhooks.secret,
      // A webhook shows a job the way its door answers: worker-comfyui's output or the wrapper's.
      render: (job) => {
        const view = answerShape(job.door) === 'worker-comfyui' ? workerComfyView : wrapperView;
        return view(job, (o) => queue.inlineData(job, o));
      },
      logger,
      onResult: (result) => metrics.webhookDeliveries.inc({ result }),
    }),
    progress: new ProgressNotifier({
      events,
      outbox,
      client: webhookClient,
      intervalS: config.webhooks.progressIntervalS,
      envSecret: config.webhooks.secret,
      logger,
      clock: opts.clock,
    }),
  };
  const wrapper: WrapperContext = {
    modifiers: ModifierRegistry.load(),
    inputs,
    delivery: { s3Defaults: defaults3, defaultWebhookUrl: config.webhooks.url, allowPrivateUrls: config.inputs.allowPrivateUrls },
    includeComfyResponse: config.outputs.includeComfyResponse,
  };
  return { config, logger, comfy, store, events, runner, queue, upkeep, metrics, wrapper, webhooks, s3Clients };
}
