// Builds a worker from its configuration: the ComfyUI client, the job store and runner, and the
// front door for the mode. Nothing starts at import; `startWorker` starts everything and returns
// a handle to stop it.
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ModifierRegistry } from '../modifiers';
import { ComfyClient } from './comfy/client';
import { ConfigError, type Config } from './config';
import { createHttpServer } from './doors/http/app';
import type { WrapperContext } from './doors/wrapper/request';
import { JobEvents } from './jobs/events';
import { createExecutor } from './jobs/execute';
import { JobQueue } from './jobs/queue';
import { Runner } from './jobs/runner';
import { SecretBox } from './jobs/secrets';
import { JobStore } from './jobs/store';
import { createOutboundClient } from './net/outbound';
import { createLogger, type Logger } from './observability/logger';
import { Metrics } from './observability/metrics';

/** How long a stopping worker lets the running job finish before leaving it for recovery. */
const STOP_GRACE_MS = 10_000;

export interface WorkerOptions {
  logger?: Logger;
  /** Milliseconds since the epoch (tests control time with it). */
  clock?: () => number;
}

export interface RunningWorker {
  /** The door's base URL, e.g. http://127.0.0.1:8000 */
  url: string;
  queue: JobQueue;
  runner: Runner;
  comfy: ComfyClient;
  events: JobEvents;
  stop(): Promise<void>;
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
  metrics: Metrics;
  wrapper: WrapperContext;
}

export function buildCore(config: Config, opts: WorkerOptions = {}): Core {
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
  const execute = createExecutor({
    comfy,
    outbound: createOutboundClient({ allowPrivate: config.inputs.allowPrivateUrls }),
    inputs,
    maxInlineBytes: config.outputs.base64MaxBytes,
    orgApiKey: config.comfy.orgApiKey,
    clock: opts.clock,
  });
  const events = new JobEvents();
  const runner = new Runner({
    store,
    comfy,
    execute,
    events,
    logger,
    jobTimeoutMs: config.jobs.timeoutS * 1000,
    readyTimeoutMs: config.comfy.readyTimeoutS * 1000,
  });
  const queue = new JobQueue({ store, runner, events, maxQueueSize: config.jobs.maxQueueSize });
  const metrics = new Metrics({ events, store, comfy });
  const wrapper: WrapperContext = {
    modifiers: ModifierRegistry.load(),
    inputs,
    includeComfyResponse: config.outputs.includeComfyResponse,
  };
  return { config, logger, comfy, store, events, runner, queue, metrics, wrapper };
}

function listen(server: http.Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve(`http://${shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost}:${address.port}`);
    });
  });
}

export async function startWorker(config: Config, opts: WorkerOptions = {}): Promise<RunningWorker> {
  if (config.mode !== 'http') {
    throw new ConfigError(`WORKER_MODE=${config.mode} is not available in this build yet; use WORKER_MODE=http`);
  }
  const core = buildCore(config, opts);
  const server = createHttpServer(core);
  let url: string;
  try {
    url = await listen(server, config.http.host, config.http.port);
  } catch (err) {
    core.store.close();
    throw new ConfigError(
      `API_HOST/API_PORT: cannot listen on ${config.http.host}:${config.http.port}: ${(err as Error).message}`,
    );
  }
  core.runner.start();
  core.logger.info({ url, mode: config.mode, comfyui: config.comfy.baseUrl, db: config.jobs.dbPath }, 'worker listening');

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await core.runner.stop(STOP_GRACE_MS);
      core.comfy.close();
      core.store.close();
    })());
  return { url, queue: core.queue, runner: core.runner, comfy: core.comfy, events: core.events, stop };
}
