// The environment, read and validated once at startup. Every variable the worker reads is named
// here with its default; the README's table is kept in step with this file.
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors';
import { parseBoolWord } from './util/words';

export type WorkerMode = 'http' | 'vast' | 'runpod';

/** How long a client may take to send a request, and how many may be connected (per door). */
export interface ConnectionLimits {
  /** REQUEST_HEADERS_TIMEOUT_S: from connecting (or the previous answer) to the last header line. */
  headersTimeoutMs: number;
  /** REQUEST_BODY_TIMEOUT_S: the longest a request body may stall (no byte arriving). */
  bodyTimeoutMs: number;
  /** REQUEST_TIMEOUT_S: the whole request (headers and body) received. */
  requestTimeoutMs: number;
  /** KEEP_ALIVE_TIMEOUT_S: an idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** MAX_CONNECTIONS: connections beyond this are dropped at once. */
  maxConnections: number;
}

/** Raised when the environment is invalid; the message names the variable. */
export { ConfigError };

// Each reader takes the raw string (or undefined) and returns a zod schema that parses it.
/** The longest delay a Node timer can wait (2^31 - 1 ms), in seconds. */
const MAX_TIMER_S = 2_147_483;

const optionalNumber = (opts: { min?: number; max?: number; int?: boolean } = {}) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      const value = Number(raw);
      const bad =
        !Number.isFinite(value) ||
        (opts.int === true && !Number.isInteger(value)) ||
        (opts.min !== undefined && value < opts.min) ||
        (opts.max !== undefined && value > opts.max);
      if (bad) {
        const kind = opts.int === true ? 'an integer' : 'a number';
        const floor = opts.min !== undefined ? ` >= ${opts.min}` : '';
        const ceiling = opts.max !== undefined ? `${floor ? ' and' : ''} <= ${opts.max}` : '';
        ctx.addIssue({ code: 'custom', message: `expected ${kind}${floor}${ceiling}, got "${raw}"` });
        return z.NEVER;
      }
      return value;
    });

const number = (fallback: number, opts: { min?: number; max?: number; int?: boolean } = {}) =>
  optionalNumber(opts).transform((value) => value ?? fallback);

const optionalBool = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const parsed = parseBoolWord(raw);
    if (parsed !== undefined) return parsed;
    ctx.addIssue({ code: 'custom', message: `expected true or false, got "${raw}"` });
    return z.NEVER;
  });

const bool = (fallback: boolean) => optionalBool.transform((value) => value ?? fallback);

const text = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw.trim() === '' ? fallback : raw.trim()));

const optionalText = z
  .string()
  .optional()
  .transform((raw) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim()));

/** One or more http(s) URLs, comma-separated (one ComfyUI per GPU); duplicates refused. */
const httpUrlList = () =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      const urls: string[] = [];
      for (const item of raw.split(',').map((part) => part.trim())) {
        let ok = false;
        try {
          const url = new URL(item);
          ok = url.protocol === 'http:' || url.protocol === 'https:';
        } catch {
          // reported below
        }
        if (!ok) {
          ctx.addIssue({ code: 'custom', message: `expected an http(s) URL (or several, separated by commas), got "${item}"` });
          return z.NEVER;
        }
        const url = item.replace(/\/+$/, '');
        if (urls.includes(url)) {
          ctx.addIssue({ code: 'custom', message: `${url} is listed twice` });
          return z.NEVER;
        }
        urls.push(url);
      }
      return urls;
    });

/** JOB_QUEUE_URL: redis:// or rediss:// (TLS). Never echoed in errors: it may hold a password. */
const redisUrl = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined || raw.trim() === '') return undefined;
    try {
      const url = new URL(raw.trim());
      if ((url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '') return raw.trim();
    } catch {
      // reported below
    }
    ctx.addIssue({ code: 'custom', message: 'expected a redis:// or rediss:// URL (redis://[:password@]host[:port][/db])' });
    return z.NEVER;
  });

/** A URL as logs and /health may show it: without its password (nor a user's token). */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password !== '') url.password = '***';
    else if (url.username !== '') url.username = '***';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(unparseable URL)';
  }
}

const httpUrl = (fallback?: string) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = raw === undefined || raw.trim() === '' ? fallback : raw.trim();
      if (value === undefined) return undefined;
      try {
        const url = new URL(value);
        if (url.protocol === 'http:' || url.protocol === 'https:') return value.replace(/\/+$/, '');
      } catch {
        // reported below
      }
      ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, got "${value}"` });
      return z.NEVER;
    });

const envSchema = z.object({
  // Mode
  WORKER_MODE: z.enum(['http', 'vast', 'runpod']).optional(),
  HTTP_API_MODE: bool(false),
  REPORT_ADDR: optionalText,
  CONTAINER_ID: optionalText,
  RUNPOD_WEBHOOK_GET_JOB: optionalText,

  // ComfyUI
  COMFYUI_API_BASE: httpUrlList(),
  COMFY_HOST: optionalText,
  COMFY_READY_TIMEOUT_S: optionalNumber({ min: 1, max: MAX_TIMER_S }),
  COMFY_ORG_API_KEY: optionalText,
  WEBSOCKET_RECONNECT_ATTEMPTS: number(5, { min: 0, int: true }),
  WEBSOCKET_RECONNECT_DELAY_S: number(3, { min: 0, max: MAX_TIMER_S }),
  WEBSOCKET_TRACE: bool(false),
  HISTORY_POLL_INTERVAL_S: number(5, { min: 0.05, max: 3600 }),
  JOB_TIMEOUT_S: number(3600, { min: 0.1, max: MAX_TIMER_S }),
  COMFY_QUEUE_AHEAD: optionalNumber({ min: 1, max: 64, int: true }),
  COMFY_PROXY: bool(false),

  // Inputs
  ALLOW_PRIVATE_URLS: bool(false),
  INPUT_DOWNLOAD_MAX_MB: number(100, { min: 0 }),
  INPUT_DOWNLOAD_TIMEOUT_S: number(60, { min: 0.1, max: MAX_TIMER_S }),

  // Outputs
  OUTPUT_BASE64_MAX_BYTES: number(10 * 1024 * 1024, { min: 0, int: true }),
  COMFYUI_OUTPUT_DIR: optionalText,
  COMFYUI_TEMP_DIR: optionalText,
  INCLUDE_COMFYUI_RESPONSE: bool(false),

  // S3 uploads: PyWorker names (S3_*) and worker-comfyui names (BUCKET_*, bucket in the URL)
  S3_ACCESS_KEY_ID: optionalText,
  S3_SECRET_ACCESS_KEY: optionalText,
  S3_BUCKET_NAME: optionalText,
  S3_ENDPOINT_URL: httpUrl(),
  S3_REGION: optionalText,
  S3_PREFIX: optionalText,
  S3_FORCE_PATH_STYLE: optionalBool,
  S3_PRESIGN_EXPIRES_S: number(604800, { min: 1, int: true }),
  S3_CONNECT_TIMEOUT: number(60, { min: 0.1, max: MAX_TIMER_S }),
  S3_CONNECT_ATTEMPTS: number(3, { min: 1, int: true }),
  BUCKET_ENDPOINT_URL: httpUrl(),
  BUCKET_ACCESS_KEY_ID: optionalText,
  BUCKET_SECRET_ACCESS_KEY: optionalText,

  // Webhooks (I2V_* are worker-comfyui's names for the same settings, WEBHOOK_TIMEOUT PyWorker's)
  WEBHOOK_URL: httpUrl(),
  WEBHOOK_SECRET: optionalText,
  WEBHOOK_RETRIES: optionalNumber({ min: 0, int: true }),
  I2V_WEBHOOK_RETRIES: optionalNumber({ min: 0, int: true }),
  WEBHOOK_BACKOFF_S: optionalNumber({ min: 0, max: MAX_TIMER_S }),
  I2V_WEBHOOK_BACKOFF_S: optionalNumber({ min: 0, max: MAX_TIMER_S }),
  WEBHOOK_MAX_BACKOFF_S: optionalNumber({ min: 0, max: MAX_TIMER_S }),
  I2V_WEBHOOK_MAX_BACKOFF_S: optionalNumber({ min: 0, max: MAX_TIMER_S }),
  WEBHOOK_TIMEOUT_S: optionalNumber({ min: 0.1, max: MAX_TIMER_S }),
  I2V_WEBHOOK_TIMEOUT_S: optionalNumber({ min: 0.1, max: MAX_TIMER_S }),
  WEBHOOK_TIMEOUT: optionalNumber({ min: 0.1, max: MAX_TIMER_S }),
  WEBHOOK_PROGRESS_INTERVAL_S: number(2, { min: 0, max: MAX_TIMER_S }),

  // HTTP server
  API_HOST: text('0.0.0.0'),
  API_PORT: number(8000, { min: 0, int: true }),
  MAX_BODY_MB: number(50, { min: 0 }),
  // Slow or lying clients, on every listening door (doors/limits.ts)
  REQUEST_HEADERS_TIMEOUT_S: number(20, { min: 0.1, max: MAX_TIMER_S }),
  REQUEST_BODY_TIMEOUT_S: number(30, { min: 0.1, max: MAX_TIMER_S }),
  REQUEST_TIMEOUT_S: number(300, { min: 0.1, max: MAX_TIMER_S }),
  KEEP_ALIVE_TIMEOUT_S: number(5, { min: 0.1, max: MAX_TIMER_S }),
  MAX_CONNECTIONS: number(1024, { min: 1, int: true }),

  // Jobs
  SQLITE_DB_PATH: optionalText,
  MAX_QUEUE_SIZE: number(1000, { min: 1, int: true }),
  JOB_QUEUE_URL: redisUrl,
  JOB_QUEUE_LOCK_S: number(30, { min: 1, max: MAX_TIMER_S }),
  JOB_QUEUE_INLINE_MAX_BYTES: number(16 * 1024 * 1024, { min: 0, int: true }),
  JOB_QUEUE_WEBHOOK_LEASE_S: number(120, { min: 1, max: MAX_TIMER_S }),
  JOB_QUEUE_TAKEOVER_S: number(60, { min: 0, max: MAX_TIMER_S }),
  WORKER_ROLE: z.enum(['all', 'api', 'runner']).default('all'),
  WORKER_NODE_ID: optionalText,
  JOB_SECRETS_KEY: optionalText,
  JOB_SECRETS_KEY_FILE: optionalText,
  SHUTDOWN_GRACE_S: number(30, { min: 0, max: 3600 }),

  // Vast.ai door (WORKER_MODE=vast)
  WORKER_PORT: number(3000, { min: 0, int: true }),
  USE_SSL: bool(false),
  SSL_CERT_PATH: text('/etc/instance.crt'),
  SSL_KEY_PATH: text('/etc/instance.key'),
  PUBLIC_IPADDR: optionalText,
  MASTER_TOKEN: optionalText,
  VAST_SIGNATURE_SCHEME: z
    .enum(['url', 'url-only', 'fields', 'all-fields', 'legacy-fields', 'any', 'off'])
    .optional()
    .transform((v) => canonicalScheme(v ?? 'any')),
  UNSECURED: bool(false),
  WORKLOAD_PER_REQUEST: number(1, { min: 0.000001 }),
  MAX_QUEUE_TIME: number(10, { min: 0 }),
  MODEL_LOG: optionalText,
  MODEL_LOG_ON_LOAD: optionalText,
  MODEL_LOG_ON_ERROR: optionalText,

  // Startup benchmark (Vast door)
  BENCHMARK_JSON_PATH: optionalText,
  BENCHMARK_TEST_WIDTH: number(512, { min: 16, int: true }),
  BENCHMARK_TEST_HEIGHT: number(512, { min: 16, int: true }),
  BENCHMARK_TEST_STEPS: number(20, { min: 1, int: true }),
  BENCHMARK_RUNS: number(8, { min: 1, int: true }),
  BENCHMARK_CACHE_PATH: text('.has_benchmark'),
  BENCHMARK_MIN_PERF: optionalNumber({ min: 0 }),
  // Upkeep of the job database
  CLEANUP_INTERVAL_S: number(3600, { min: 0.01, max: MAX_TIMER_S }),
  JOB_RETENTION_HOURS: number(24, { min: 0 }),
  STUCK_JOB_HOURS: optionalNumber({ min: 0.001 }),

  // Access control of the HTTP door
  API_KEY: optionalText,
  ADMIN_API_KEY: optionalText,

  // The simulator started by `--simulate` (npm run simulate)
  SIMULATOR_NODE_DELAY_MS: number(20, { min: 0 }),
  SIMULATOR_STEP_DELAY_MS: number(10, { min: 0 }),

  // RunPod door (WORKER_MODE=runpod). RUNPOD_* in the first group are set by RunPod's platform.
  RUNPOD_WEBHOOK_POST_OUTPUT: optionalText,
  RUNPOD_WEBHOOK_POST_STREAM: optionalText,
  RUNPOD_WEBHOOK_PING: optionalText,
  RUNPOD_PING_INTERVAL: number(10_000, { min: 100, max: 2 ** 31 - 1, int: true }),
  RUNPOD_AI_API_KEY: optionalText,
  RUNPOD_POD_ID: optionalText,
  RUNPOD_POD_HOSTNAME: optionalText,
  RUNPOD_ENDPOINT_ID: optionalText,
  RUNPOD_LOG_LEVEL: optionalText,
  RUNPOD_DEBUG_LEVEL: optionalText,
  // ... and these are this worker's own settings of the RunPod door.
  RUNPOD_PROGRESS_INTERVAL_MS: number(2_000, { min: 0, max: 2 ** 31 - 1 }),
  RUNPOD_RESULT_ATTEMPTS: number(5, { min: 1, max: 100, int: true }),
  RUNPOD_RESULT_BACKOFF_MS: number(1_000, { min: 0, max: 600_000 }),
  // main.ts gives a stop 30 s in all; the grace must leave time to post the result.
  RUNPOD_STOP_GRACE_S: number(10, { min: 0, max: 15 }),
  // worker-comfyui's settings
  REFRESH_WORKER: bool(false),
  SERVE_API_LOCALLY: bool(false),
  COMFY_LOG_LEVEL: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const level = (raw ?? '').trim().toUpperCase() || 'DEBUG';
      if (['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'].includes(level)) return level;
      ctx.addIssue({ code: 'custom', message: `expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got "${raw}"` });
      return z.NEVER;
    }),
  NETWORK_VOLUME_DEBUG: bool(false),
  NETWORK_VOLUME_PATH: text('/runpod-volume'),
  COMFY_API_AVAILABLE_INTERVAL_MS: number(50, { min: 1, max: MAX_TIMER_S * 1000 }),
  COMFY_API_AVAILABLE_MAX_RETRIES: number(0, { min: 0, int: true }),

  // Logging
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).optional(),
});

/**
 * Every variable the schema reads, with the value it takes when unset (undefined when there is
 * none or it is worked out from others); VAST_TCP_PORT_<WORKER_PORT> is read beside them. For the
 * README's table, which a test holds to this list.
 */
export function environmentVariables(): Array<{ name: string; default: unknown }> {
  return Object.entries(envSchema.shape).map(([name, schema]) => {
    const unset = (schema as z.ZodType).safeParse(undefined);
    return { name, default: unset.success ? unset.data : undefined };
  });
}

export type Config = ReturnType<typeof buildConfig>;

/** Which message the autoscaler's signature covers (see worker/doors/vast/signature.ts). */
export type SignatureScheme = 'url' | 'fields' | 'legacy-fields' | 'any' | 'off';

function canonicalScheme(name: string): SignatureScheme {
  if (name === 'url-only') return 'url';
  if (name === 'all-fields') return 'fields';
  return name as SignatureScheme;
}

/** Vast's default autoscaler address (PyWorker's REPORT_ADDR default). */
export const DEFAULT_REPORT_ADDR = 'https://run.vast.ai';

function buildConfig(env: z.infer<typeof envSchema>, cwd: string, publicPort: string | undefined) {
  const mode = chooseMode(env);
  return {
    mode,
    comfy: {
      /** The first backend: what /comfy/* proxies to. */
      baseUrl: comfyBaseUrls(env)[0] ?? DEFAULT_COMFY,
      /** Every backend, one ComfyUI per GPU. */
      baseUrls: comfyBaseUrls(env),
      readyTimeoutS: readyTimeoutS(env),
      /** COMFY_LOG_LEVEL: ComfyUI's --verbose level, for whoever launches ComfyUI. */
      logLevel: env.COMFY_LOG_LEVEL,
      orgApiKey: env.COMFY_ORG_API_KEY,
      reconnectAttempts: env.WEBSOCKET_RECONNECT_ATTEMPTS,
      reconnectDelayS: env.WEBSOCKET_RECONNECT_DELAY_S,
      websocketTrace: env.WEBSOCKET_TRACE,
      historyPollIntervalS: env.HISTORY_POLL_INTERVAL_S,
      proxy: env.COMFY_PROXY,
    },
    inputs: {
      allowPrivateUrls: env.ALLOW_PRIVATE_URLS,
      downloadMaxBytes: Math.round(env.INPUT_DOWNLOAD_MAX_MB * 1024 * 1024),
      downloadTimeoutS: env.INPUT_DOWNLOAD_TIMEOUT_S,
    },
    outputs: {
      base64MaxBytes: env.OUTPUT_BASE64_MAX_BYTES,
      includeComfyResponse: env.INCLUDE_COMFYUI_RESPONSE,
      /** ComfyUI's folders on a shared disk: outputs are read there first, /view when missing. */
      folders: {
        output: env.COMFYUI_OUTPUT_DIR === undefined ? undefined : path.resolve(cwd, env.COMFYUI_OUTPUT_DIR),
        temp: env.COMFYUI_TEMP_DIR === undefined ? undefined : path.resolve(cwd, env.COMFYUI_TEMP_DIR),
      },
    },
    s3: {
      accessKeyId: env.S3_ACCESS_KEY_ID,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY,
      bucketName: env.S3_BUCKET_NAME,
      endpointUrl: env.S3_ENDPOINT_URL,
      region: env.S3_REGION,
      prefix: env.S3_PREFIX,
      forcePathStyle: env.S3_FORCE_PATH_STYLE,
      presignExpiresS: Math.min(env.S3_PRESIGN_EXPIRES_S, 604800),
      connectTimeoutS: env.S3_CONNECT_TIMEOUT,
      attempts: env.S3_CONNECT_ATTEMPTS,
      bucketEndpointUrl: env.BUCKET_ENDPOINT_URL,
      bucketAccessKeyId: env.BUCKET_ACCESS_KEY_ID,
      bucketSecretAccessKey: env.BUCKET_SECRET_ACCESS_KEY,
    },
    webhooks: {
      url: env.WEBHOOK_URL,
      secret: env.WEBHOOK_SECRET,
      retries: env.WEBHOOK_RETRIES ?? env.I2V_WEBHOOK_RETRIES ?? 5,
      backoffS: env.WEBHOOK_BACKOFF_S ?? env.I2V_WEBHOOK_BACKOFF_S ?? 2,
      maxBackoffS: env.WEBHOOK_MAX_BACKOFF_S ?? env.I2V_WEBHOOK_MAX_BACKOFF_S ?? 60,
      timeoutS: env.WEBHOOK_TIMEOUT_S ?? env.I2V_WEBHOOK_TIMEOUT_S ?? env.WEBHOOK_TIMEOUT ?? 30,
      progressIntervalS: env.WEBHOOK_PROGRESS_INTERVAL_S,
    },
    http: {
      host: env.API_HOST,
      port: env.API_PORT,
      maxBodyBytes: Math.round(env.MAX_BODY_MB * 1024 * 1024),
      limits: connectionLimits(env),
    },
    jobs: {
      dbPath: path.resolve(cwd, env.SQLITE_DB_PATH ?? path.join('data', 'comfyui_jobs.db')),
      timeoutS: env.JOB_TIMEOUT_S,
      /**
       * Prompts of ours that may wait in each ComfyUI's queue behind the one executing. The HTTP
       * API with one GPU: 3, so ComfyUI never idles between short jobs. Several GPUs: 1, so waiting
       * jobs stay in our queue, where the first backend to free up takes them. Vast and RunPod: 1
       * (their platforms queue; RunPod's /purge-queue empties ours).
       */
      queueAhead: env.COMFY_QUEUE_AHEAD ?? (mode === 'http' && comfyBaseUrls(env).length === 1 ? 3 : 1),
      maxQueueSize: env.MAX_QUEUE_SIZE,
      /** JOB_QUEUE_URL: jobs in Redis (BullMQ), shared by every worker pointed at it; else SQLite. */
      queueUrl: env.JOB_QUEUE_URL,
      queueLockS: env.JOB_QUEUE_LOCK_S,
      queueInlineMaxBytes: env.JOB_QUEUE_INLINE_MAX_BYTES,
      /** How long a webhook delivery handed to one worker's sender is not handed to another. */
      queueWebhookLeaseS: env.JOB_QUEUE_WEBHOOK_LEASE_S,
      /**
       * How long a job whose worker died after sending its prompt waits for a worker with that
       * backend to reconcile it, before another fails it rather than risk running it twice.
       */
      queueTakeoverS: env.JOB_QUEUE_TAKEOVER_S,
      /**
       * Which machine this is, with a shared queue: a backend URL such as 127.0.0.1:8188 names a
       * different ComfyUI on every machine, so jobs record the machine with the URL.
       */
      nodeId: env.WORKER_NODE_ID ?? os.hostname(),
      /** WORKER_ROLE: all (serve and run), api (serve only), runner (run, /health and /metrics only). */
      role: env.WORKER_ROLE,
      secretsKey: env.JOB_SECRETS_KEY,
      secretsKeyFile: env.JOB_SECRETS_KEY_FILE === undefined ? undefined : path.resolve(cwd, env.JOB_SECRETS_KEY_FILE),
      /** SIGTERM/SIGINT: how long the running job may take to finish before it is left for recovery. */
      shutdownGraceS: env.SHUTDOWN_GRACE_S,
    },
    vast: {
      port: env.WORKER_PORT,
      useSsl: env.USE_SSL,
      certPath: path.resolve(cwd, env.SSL_CERT_PATH),
      keyPath: path.resolve(cwd, env.SSL_KEY_PATH),
      /** REPORT_ADDR split on commas: tried in order until one answers (failover). */
      reportAddrs: (env.REPORT_ADDR ?? DEFAULT_REPORT_ADDR)
        .split(',')
        .map((a) => a.trim().replace(/\/+$/, ''))
        .filter((a) => a !== ''),
      /** Raw CONTAINER_ID; the door checks it is an integer and reports when it is not. */
      containerId: env.CONTAINER_ID,
      publicIp: env.PUBLIC_IPADDR,
      /** VAST_TCP_PORT_<WORKER_PORT>: the public port Vast maps to WORKER_PORT. */
      publicPort,
      masterToken: env.MASTER_TOKEN ?? '',
      signatureScheme: env.UNSECURED ? ('off' as const) : env.VAST_SIGNATURE_SCHEME,
      workloadPerRequest: env.WORKLOAD_PER_REQUEST,
      maxQueueTimeS: env.MAX_QUEUE_TIME,
      modelLog:
        env.MODEL_LOG === undefined
          ? undefined
          : {
              path: path.resolve(cwd, env.MODEL_LOG),
              // PyWorker's ComfyUI defaults, for the api-wrapper's log.
              onLoad: tokens(env.MODEL_LOG_ON_LOAD ?? 'BACKENDS_READY'),
              onError: tokens(
                env.MODEL_LOG_ON_ERROR ?? 'BACKENDS_READY_TIMEOUT,BACKEND_UNRECOVERABLE,Application startup failed',
              ),
            },
    },
    benchmark: {
      jsonPath: env.BENCHMARK_JSON_PATH === undefined ? undefined : path.resolve(cwd, env.BENCHMARK_JSON_PATH),
      width: env.BENCHMARK_TEST_WIDTH,
      height: env.BENCHMARK_TEST_HEIGHT,
      steps: env.BENCHMARK_TEST_STEPS,
      runs: env.BENCHMARK_RUNS,
      cachePath: path.resolve(cwd, env.BENCHMARK_CACHE_PATH),
      minPerf: env.BENCHMARK_MIN_PERF,
    },
    upkeep: {
      intervalS: env.CLEANUP_INTERVAL_S,
      retentionHours: env.JOB_RETENTION_HOURS,
      stuckHours: stuckHours(env),
    },
    access: { apiKey: env.API_KEY, adminApiKey: env.ADMIN_API_KEY },
    simulator: { nodeDelayMs: env.SIMULATOR_NODE_DELAY_MS, stepDelayMs: env.SIMULATOR_STEP_DELAY_MS },
    runpod: {
      getJobUrl: env.RUNPOD_WEBHOOK_GET_JOB,
      postOutputUrl: env.RUNPOD_WEBHOOK_POST_OUTPUT,
      /** Read but unused: the door returns one result per job, it does not stream partial outputs. */
      postStreamUrl: env.RUNPOD_WEBHOOK_POST_STREAM,
      pingUrl: env.RUNPOD_WEBHOOK_PING,
      pingIntervalMs: env.RUNPOD_PING_INTERVAL,
      apiKey: env.RUNPOD_AI_API_KEY,
      podId: env.RUNPOD_POD_ID,
      podHostname: env.RUNPOD_POD_HOSTNAME,
      endpointId: env.RUNPOD_ENDPOINT_ID,
      progressIntervalMs: env.RUNPOD_PROGRESS_INTERVAL_MS,
      resultAttempts: env.RUNPOD_RESULT_ATTEMPTS,
      resultBackoffMs: env.RUNPOD_RESULT_BACKOFF_MS,
      stopGraceMs: env.RUNPOD_STOP_GRACE_S * 1000,
      refreshWorker: env.REFRESH_WORKER,
      serveApiLocally: env.SERVE_API_LOCALLY,
      networkVolumeDebug: env.NETWORK_VOLUME_DEBUG,
      networkVolumePath: env.NETWORK_VOLUME_PATH,
    },
    log: { level: logLevel(env) },
  };
}

/** A comma-separated list of log strings; empty entries dropped. */
function tokens(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

/**
 * A job running longer than STUCK_JOB_HOURS is failed as stuck, so the threshold must lie beyond
 * a job's own deadline. Unset: 2 h, or an hour past JOB_TIMEOUT_S when that is longer.
 */
function stuckHours(env: z.infer<typeof envSchema>): number {
  const timeoutH = env.JOB_TIMEOUT_S / 3600;
  if (env.STUCK_JOB_HOURS === undefined) return Math.max(2, timeoutH + 1);
  if (env.STUCK_JOB_HOURS <= timeoutH) {
    throw new ConfigError(
      `Invalid configuration:\n  STUCK_JOB_HOURS: ${env.STUCK_JOB_HOURS} h is not longer than JOB_TIMEOUT_S (${env.JOB_TIMEOUT_S} s): running jobs would be failed as stuck`,
    );
  }
  return env.STUCK_JOB_HOURS;
}

/** The doors' timeouts and connection cap; a request cannot end before its headers arrive. */
function connectionLimits(env: z.infer<typeof envSchema>): ConnectionLimits {
  if (env.REQUEST_HEADERS_TIMEOUT_S > env.REQUEST_TIMEOUT_S) {
    throw new ConfigError(
      `Invalid configuration:\n  REQUEST_HEADERS_TIMEOUT_S: ${env.REQUEST_HEADERS_TIMEOUT_S} s is longer than REQUEST_TIMEOUT_S (${env.REQUEST_TIMEOUT_S} s)`,
    );
  }
  return {
    headersTimeoutMs: Math.round(env.REQUEST_HEADERS_TIMEOUT_S * 1000),
    bodyTimeoutMs: Math.round(env.REQUEST_BODY_TIMEOUT_S * 1000),
    requestTimeoutMs: Math.round(env.REQUEST_TIMEOUT_S * 1000),
    keepAliveTimeoutMs: Math.round(env.KEEP_ALIVE_TIMEOUT_S * 1000),
    maxConnections: env.MAX_CONNECTIONS,
  };
}

function chooseMode(env: z.infer<typeof envSchema>): WorkerMode {
  if (env.WORKER_MODE !== undefined) return env.WORKER_MODE;
  if (env.HTTP_API_MODE) return 'http';
  if (env.REPORT_ADDR !== undefined && env.CONTAINER_ID !== undefined) return 'vast';
  if (env.RUNPOD_WEBHOOK_GET_JOB !== undefined) return 'runpod';
  // worker-comfyui's local test API: its users set only this.
  if (env.SERVE_API_LOCALLY) return 'runpod';
  return 'http';
}

/**
 * COMFY_READY_TIMEOUT_S, else worker-comfyui's COMFY_API_AVAILABLE_MAX_RETRIES x _INTERVAL_MS when
 * the retries are set (0, its default, means "as long as ComfyUI lives": our 600 s default then).
 */
function readyTimeoutS(env: z.infer<typeof envSchema>): number {
  if (env.COMFY_READY_TIMEOUT_S !== undefined) return env.COMFY_READY_TIMEOUT_S;
  if (env.COMFY_API_AVAILABLE_MAX_RETRIES > 0) {
    const s = (env.COMFY_API_AVAILABLE_MAX_RETRIES * env.COMFY_API_AVAILABLE_INTERVAL_MS) / 1000;
    return Math.min(Math.max(1, s), MAX_TIMER_S);
  }
  return 600;
}

/** The RunPod SDK's level names (ERROR, WARN, INFO, DEBUG) as pino's. */
const RUNPOD_LEVELS: Record<string, 'error' | 'warn' | 'info' | 'debug' | 'trace'> = {
  ERROR: 'error',
  WARN: 'warn',
  WARNING: 'warn',
  INFO: 'info',
  DEBUG: 'debug',
  TRACE: 'trace',
};

/** LOG_LEVEL, else RUNPOD_LOG_LEVEL (or its older name RUNPOD_DEBUG_LEVEL), else info. */
function logLevel(env: z.infer<typeof envSchema>): NonNullable<z.infer<typeof envSchema>['LOG_LEVEL']> {
  if (env.LOG_LEVEL !== undefined) return env.LOG_LEVEL;
  for (const [name, raw] of [
    ['RUNPOD_LOG_LEVEL', env.RUNPOD_LOG_LEVEL],
    ['RUNPOD_DEBUG_LEVEL', env.RUNPOD_DEBUG_LEVEL],
  ] as const) {
    if (raw === undefined) continue;
    const level = RUNPOD_LEVELS[raw.toUpperCase()];
    if (level === undefined) {
      throw new ConfigError(`Invalid configuration:\n  ${name}: expected ERROR, WARN, INFO or DEBUG, got "${raw}"`);
    }
    return level;
  }
  return 'info';
}

const DEFAULT_COMFY = 'http://127.0.0.1:8188';

function comfyBaseUrls(env: z.infer<typeof envSchema>): string[] {
  if (env.COMFYUI_API_BASE !== undefined) return env.COMFYUI_API_BASE;
  if (env.COMFY_HOST !== undefined) {
    const candidate = /^https?:\/\//.test(env.COMFY_HOST) ? env.COMFY_HOST : `http://${env.COMFY_HOST}`;
    try {
      return [new URL(candidate).origin];
    } catch {
      throw new ConfigError(`COMFY_HOST: expected host:port, got "${env.COMFY_HOST}"`);
    }
  }
  return [DEFAULT_COMFY];
}

/** Reads and validates the environment. Throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd()): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const message = issue.code === 'invalid_value' ? `expected one of ${issue.values.join(', ')}` : issue.message;
      return `${name}: ${message}`;
    });
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  // The public port's variable is named after WORKER_PORT, so it is read once the port is known.
  const portVar = `VAST_TCP_PORT_${parsed.data.WORKER_PORT}`;
  const publicPort = env[portVar]?.trim() || undefined;
  if (publicPort !== undefined && !/^\d{1,5}$/.test(publicPort)) {
    throw new ConfigError(`Invalid configuration:\n  ${portVar}: expected a port number, got "${publicPort}"`);
  }
  const env2 = parsed.data;
  if (env2.WORKER_ROLE !== 'all' && env2.JOB_QUEUE_URL === undefined) {
    throw new ConfigError(
      `Invalid configuration:\n  WORKER_ROLE: ${env2.WORKER_ROLE} needs JOB_QUEUE_URL (a queue shared with other workers); without it jobs stay on this machine, so use all`,
    );
  }
  const mode = chooseMode(env2);
  if (env2.WORKER_ROLE !== 'all' && mode !== 'http') {
    throw new ConfigError(
      `Invalid configuration:\n  WORKER_ROLE: ${env2.WORKER_ROLE} is for the standalone HTTP API (WORKER_MODE=http); the Vast and RunPod doors run their own jobs, so use all`,
    );
  }
  if (env2.JOB_QUEUE_URL !== undefined && mode !== 'http') {
    // Vast's autoscaler sends each request to the worker it chose and accounts load (and the
    // benchmark's max_perf) per worker; RunPod hands each job to one pod from its own queue. A
    // shared queue would run their jobs on other machines' GPUs behind those platforms' backs.
    throw new ConfigError(
      `Invalid configuration:\n  JOB_QUEUE_URL: a queue shared across machines is for the standalone HTTP API (WORKER_MODE=http); with WORKER_MODE=${mode} the platform ` +
        (mode === 'vast'
          ? "(Vast's autoscaler) routes each request to one worker and accounts its load and benchmark per worker, so its jobs must run on that worker's own GPUs"
          : '(RunPod) brings its own job queue and hands each job to one worker, so its jobs must run there') +
        '; unset JOB_QUEUE_URL (jobs then stay in SQLITE_DB_PATH on this machine)',
    );
  }
  if (env2.JOB_QUEUE_URL !== undefined && env2.JOB_SECRETS_KEY === undefined && env2.JOB_SECRETS_KEY_FILE === undefined) {
    throw new ConfigError(
      'Invalid configuration:\n  JOB_SECRETS_KEY: with JOB_QUEUE_URL, set the same JOB_SECRETS_KEY (or JOB_SECRETS_KEY_FILE) on every worker, so any of them can open the credentials another sealed',
    );
  }
  return buildConfig(env2, cwd, publicPort);
}
