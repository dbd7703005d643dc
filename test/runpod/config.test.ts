// The RunPod door's settings: mode detection, the RunPod and worker-comfyui variables with their
// defaults, and what a worker started without what the door needs says.
import { startWorker } from '../../worker/app';
import { ConfigError, loadConfig } from '../../worker/config';
import { createLogger } from '../../worker/observability/logger';
import { tempDir } from '../support/tmp';

describe('RunPod settings', () => {
  test('mode: RUNPOD_WEBHOOK_GET_JOB, or SERVE_API_LOCALLY alone, selects the RunPod door; explicit modes win', () => {
    expect(loadConfig({ RUNPOD_WEBHOOK_GET_JOB: 'https://api.runpod.ai/v2/e/job-take/$RUNPOD_POD_ID' }).mode).toBe('runpod');
    expect(loadConfig({ SERVE_API_LOCALLY: 'true' }).mode).toBe('runpod');
    expect(loadConfig({ SERVE_API_LOCALLY: 'false' }).mode).toBe('http');
    expect(loadConfig({ SERVE_API_LOCALLY: 'true', WORKER_MODE: 'http' }).mode).toBe('http');
    expect(loadConfig({ SERVE_API_LOCALLY: 'true', HTTP_API_MODE: 'true' }).mode).toBe('http');
  });

  test('defaults', () => {
    const { runpod, comfy, log } = loadConfig({ WORKER_MODE: 'runpod' });
    expect(runpod).toEqual({
      getJobUrl: undefined,
      postOutputUrl: undefined,
      postStreamUrl: undefined,
      pingUrl: undefined,
      pingIntervalMs: 10_000,
      apiKey: undefined,
      podId: undefined,
      podHostname: undefined,
      endpointId: undefined,
      progressIntervalMs: 2_000,
      resultAttempts: 5,
      resultBackoffMs: 1_000,
      stopGraceMs: 10_000,
      refreshWorker: false,
      serveApiLocally: false,
      networkVolumeDebug: false,
      networkVolumePath: '/runpod-volume',
    });
    expect(comfy.logLevel).toBe('DEBUG');
    expect(comfy.readyTimeoutS).toBe(600);
    expect(log.level).toBe('info');
  });

  test("COMFY_API_AVAILABLE_*: worker-comfyui's names for the readiness wait (retries x interval); COMFY_READY_TIMEOUT_S wins", () => {
    expect(
      loadConfig({ COMFY_API_AVAILABLE_MAX_RETRIES: '500', COMFY_API_AVAILABLE_INTERVAL_MS: '500' }).comfy.readyTimeoutS,
    ).toBe(250);
    expect(loadConfig({ COMFY_API_AVAILABLE_MAX_RETRIES: '500' }).comfy.readyTimeoutS).toBe(25);
    // 0 (worker-comfyui's default) means "as long as ComfyUI lives": our own limit then.
    expect(loadConfig({ COMFY_API_AVAILABLE_MAX_RETRIES: '0' }).comfy.readyTimeoutS).toBe(600);
    expect(loadConfig({ COMFY_API_AVAILABLE_MAX_RETRIES: '500', COMFY_READY_TIMEOUT_S: '30' }).comfy.readyTimeoutS).toBe(30);
  });

  test('COMFY_LOG_LEVEL, RUNPOD_LOG_LEVEL (when LOG_LEVEL is unset)', () => {
    expect(loadConfig({ COMFY_LOG_LEVEL: 'info' }).comfy.logLevel).toBe('INFO');
    expect(loadConfig({ RUNPOD_LOG_LEVEL: 'WARN' }).log.level).toBe('warn');
    expect(loadConfig({ RUNPOD_DEBUG_LEVEL: 'DEBUG' }).log.level).toBe('debug');
    expect(loadConfig({ RUNPOD_LOG_LEVEL: 'WARN', LOG_LEVEL: 'error' }).log.level).toBe('error');
  });

  test.each([
    [{ COMFY_LOG_LEVEL: 'LOUD' }, 'COMFY_LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got "LOUD"'],
    [{ RUNPOD_LOG_LEVEL: 'chatty' }, 'RUNPOD_LOG_LEVEL: expected ERROR, WARN, INFO or DEBUG'],
    [{ RUNPOD_PING_INTERVAL: 'often' }, 'RUNPOD_PING_INTERVAL: expected an integer'],
    [{ RUNPOD_STOP_GRACE_S: '60' }, 'RUNPOD_STOP_GRACE_S: expected a number >= 0 and <= 15'],
    [{ REFRESH_WORKER: 'sometimes' }, 'REFRESH_WORKER: expected true or false'],
    [{ NETWORK_VOLUME_DEBUG: 'perhaps' }, 'NETWORK_VOLUME_DEBUG: expected true or false'],
  ])('a bad value names the variable: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  test.each([
    [{ WORKER_MODE: 'runpod' }, 'WORKER_MODE=runpod needs RUNPOD_WEBHOOK_GET_JOB'],
    [{ RUNPOD_WEBHOOK_GET_JOB: 'http://127.0.0.1:9/v2/e/job-take/$RUNPOD_POD_ID' }, 'RUNPOD_WEBHOOK_POST_OUTPUT is not set'],
  ])('the door refuses to start without what it needs: %j', async (env, message) => {
    const config = loadConfig({
      ...env,
      SQLITE_DB_PATH: `${tempDir('rp-config-')}/jobs.db`,
      COMFYUI_API_BASE: 'http://127.0.0.1:9',
    });
    await expect(startWorker(config, { logger: createLogger('silent') })).rejects.toThrow(message);
  });
});
