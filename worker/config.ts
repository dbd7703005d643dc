// The environment, read and validated once at startup. Every variable the worker reads is named
// here with its default; the README's table is kept in step with this file.
import path from 'node:path';
import { z } from 'zod';

export type WorkerMode = 'http' | 'vast' | 'runpod';

/** Raised when the environment is invalid; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const TRUE_WORDS = new Set(['1', 'true', 't', 'yes', 'y', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'f', 'no', 'n', 'off', '']);

// Each reader takes the raw string (or undefined) and returns a zod schema that parses it.
const bool = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined) return fallback;
      const word = raw.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true or false, got "${raw}"` });
      return z.NEVER;
    });

const number = (fallback: number, opts: { min?: number; int?: boolean } = {}) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      const value = Number(raw);
      const bad =
        !Number.isFinite(value) ||
        (opts.int === true && !Number.isInteger(value)) ||
        (opts.min !== undefined && value < opts.min);
      if (bad) {
        const kind = opts.int === true ? 'an integer' : 'a number';
        const floor = opts.min !== undefined ? ` >= ${opts.min}` : '';
        ctx.addIssue({ code: 'custom', message: `expected ${kind}${floor}, got "${raw}"` });
        return z.NEVER;
      }
      return value;
    });

const optionalNumber = (opts: { min?: number } = {}) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      const value = Number(raw);
      if (!Number.isFinite(value) || (opts.min !== undefined && value < opts.min)) {
        ctx.addIssue({ code: 'custom', message: `expected a number, got "${raw}"` });
        return z.NEVER;
      }
      return value;
    });

const text = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw.trim() === '' ? fallback : raw.trim()));

const optionalText = z
  .string()
  .optional()
  .transform((raw) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim()));

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
  COMFYUI_API_BASE: httpUrl(),
  COMFY_HOST: optionalText,
  COMFY_READY_TIMEOUT_S: number(600, { min: 0 }),
  COMFY_ORG_API_KEY: optionalText,
  WEBSOCKET_RECONNECT_ATTEMPTS: number(5, { min: 0, int: true }),
  WEBSOCKET_RECONNECT_DELAY_S: number(3, { min: 0 }),
  WEBSOCKET_TRACE: bool(false),
  HISTORY_POLL_INTERVAL_S: number(5, { min: 0.05 }),
  JOB_TIMEOUT_S: number(3600, { min: 0.1 }),
  COMFY_PROXY: bool(false),

  // Inputs
  ALLOW_PRIVATE_URLS: bool(false),
  INPUT_DOWNLOAD_MAX_MB: number(100, { min: 0 }),
  INPUT_DOWNLOAD_TIMEOUT_S: number(60, { min: 0.1 }),

  // Outputs
  OUTPUT_BASE64_MAX_BYTES: number(10 * 1024 * 1024, { min: 0, int: true }),
  INCLUDE_COMFYUI_RESPONSE: bool(false),

  // HTTP server
  API_HOST: text('0.0.0.0'),
  API_PORT: number(8000, { min: 0, int: true }),
  MAX_BODY_MB: number(50, { min: 0 }),

  // Jobs
  SQLITE_DB_PATH: optionalText,
  MAX_QUEUE_SIZE: number(1000, { min: 1, int: true }),
  JOB_SECRETS_KEY: optionalText,
  JOB_SECRETS_KEY_FILE: optionalText,

  // Upkeep of the job database
  CLEANUP_INTERVAL_S: number(3600, { min: 0.01 }),
  JOB_RETENTION_HOURS: number(24, { min: 0 }),
  STUCK_JOB_HOURS: number(2, { min: 0.001 }),

  // Access control of the HTTP door
  API_KEY: optionalText,
  ADMIN_API_KEY: optionalText,

  // Logging
  LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .optional()
    .transform((v) => v ?? 'info'),
});

export type Config = ReturnType<typeof buildConfig>;

function buildConfig(env: z.infer<typeof envSchema>, cwd: string) {
  const mode = chooseMode(env);
  return {
    mode,
    comfy: {
      baseUrl: comfyBaseUrl(env),
      readyTimeoutS: env.COMFY_READY_TIMEOUT_S,
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
    },
    http: {
      host: env.API_HOST,
      port: env.API_PORT,
      maxBodyBytes: Math.round(env.MAX_BODY_MB * 1024 * 1024),
    },
    jobs: {
      dbPath: path.resolve(cwd, env.SQLITE_DB_PATH ?? path.join('data', 'comfyui_jobs.db')),
      timeoutS: env.JOB_TIMEOUT_S,
      maxQueueSize: env.MAX_QUEUE_SIZE,
      secretsKey: env.JOB_SECRETS_KEY,
      secretsKeyFile: env.JOB_SECRETS_KEY_FILE === undefined ? undefined : path.resolve(cwd, env.JOB_SECRETS_KEY_FILE),
    },
    upkeep: {
      intervalS: env.CLEANUP_INTERVAL_S,
      retentionHours: env.JOB_RETENTION_HOURS,
      stuckHours: env.STUCK_JOB_HOURS,
    },
    access: { apiKey: env.API_KEY, adminApiKey: env.ADMIN_API_KEY },
    log: { level: env.LOG_LEVEL },
  };
}

function chooseMode(env: z.infer<typeof envSchema>): WorkerMode {
  if (env.WORKER_MODE !== undefined) return env.WORKER_MODE;
  if (env.HTTP_API_MODE) return 'http';
  if (env.REPORT_ADDR !== undefined && env.CONTAINER_ID !== undefined) return 'vast';
  if (env.RUNPOD_WEBHOOK_GET_JOB !== undefined) return 'runpod';
  return 'http';
}

function comfyBaseUrl(env: z.infer<typeof envSchema>): string {
  if (env.COMFYUI_API_BASE !== undefined) return env.COMFYUI_API_BASE;
  if (env.COMFY_HOST !== undefined) {
    const candidate = /^https?:\/\//.test(env.COMFY_HOST) ? env.COMFY_HOST : `http://${env.COMFY_HOST}`;
    try {
      return new URL(candidate).origin;
    } catch {
      throw new ConfigError(`COMFY_HOST: expected host:port, got "${env.COMFY_HOST}"`);
    }
  }
  return 'http://127.0.0.1:8188';
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
  return buildConfig(parsed.data, cwd);
}
