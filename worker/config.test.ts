import { ConfigError, loadConfig, redactUrl } from './config';

describe('loadConfig', () => {
  test('defaults', () => {
    const config = loadConfig({}, '/srv');
    expect(config.mode).toBe('http');
    expect(config.comfy.baseUrl).toBe('http://127.0.0.1:8188');
    expect(config.http).toMatchObject({ host: '0.0.0.0', port: 8000, maxBodyBytes: 50 * 1024 * 1024 });
    expect(config.comfy.reconnectAttempts).toBe(5);
    expect(config.comfy.reconnectDelayS).toBe(3);
    expect(config.jobs.timeoutS).toBe(3600);
    expect(config.jobs.dbPath).toBe('/srv/data/comfyui_jobs.db');
    expect(config.outputs.base64MaxBytes).toBe(10485760);
  });

  test('mode: explicit, HTTP_API_MODE, Vast and RunPod detection', () => {
    expect(loadConfig({ WORKER_MODE: 'runpod' }).mode).toBe('runpod');
    expect(loadConfig({ HTTP_API_MODE: 'true', REPORT_ADDR: 'https://run.vast.ai', CONTAINER_ID: '1' }).mode).toBe('http');
    expect(loadConfig({ REPORT_ADDR: 'https://run.vast.ai', CONTAINER_ID: '1' }).mode).toBe('vast');
    expect(loadConfig({ REPORT_ADDR: 'https://run.vast.ai' }).mode).toBe('http');
    expect(loadConfig({ RUNPOD_WEBHOOK_GET_JOB: 'https://api.runpod.ai/v2/x/job-take/$ID' }).mode).toBe('runpod');
  });

  test('COMFY_QUEUE_AHEAD: 3 for the HTTP API on one backend, 1 on several or behind Vast and RunPod; the variable wins', () => {
    const ahead = (env: Record<string, string>) => loadConfig(env).jobs.queueAhead;
    expect(ahead({})).toBe(3);
    expect(ahead({ COMFYUI_API_BASE: 'http://127.0.0.1:8188,http://127.0.0.1:8189' })).toBe(1);
    expect(ahead({ WORKER_MODE: 'runpod' })).toBe(1);
    expect(ahead({ REPORT_ADDR: 'https://run.vast.ai', CONTAINER_ID: '1' })).toBe(1);
    expect(ahead({ COMFY_QUEUE_AHEAD: '5', COMFYUI_API_BASE: 'http://127.0.0.1:8188,http://127.0.0.1:8189' })).toBe(5);
    expect(() => loadConfig({ COMFY_QUEUE_AHEAD: '0' })).toThrow(/COMFY_QUEUE_AHEAD/);
  });

  test('the shared queue: JOB_QUEUE_URL, WORKER_ROLE and their checks; the password never echoed nor shown', () => {
    const defaults = loadConfig({}).jobs;
    expect([
      defaults.queueUrl,
      defaults.role,
      defaults.queueLockS,
      defaults.queueInlineMaxBytes,
      defaults.queueTakeoverS,
    ]).toEqual([undefined, 'all', 30, 16 * 1024 * 1024, 60]);
    expect(loadConfig({ JOB_QUEUE_TAKEOVER_S: '5' }).jobs.queueTakeoverS).toBe(5);
    const url = 'rediss://:hunter2-pw@redis.example:6380/2';
    const config = loadConfig({ JOB_QUEUE_URL: url, JOB_SECRETS_KEY: 'k', WORKER_ROLE: 'api' });
    expect([config.jobs.queueUrl, config.jobs.role]).toEqual([url, 'api']);
    expect(redactUrl(url)).toBe('rediss://:***@redis.example:6380/2');
    expect(redactUrl('redis://token-user@host:6379')).toBe('redis://***@host:6379');
    const refused = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    const bad = refused({ JOB_QUEUE_URL: 'http://:hunter2-pw@host' });
    expect(bad).toMatch(/JOB_QUEUE_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(bad).not.toContain('hunter2-pw');
    expect(refused({ WORKER_ROLE: 'runner' })).toMatch(/WORKER_ROLE: runner needs JOB_QUEUE_URL/);
    expect(refused({ WORKER_ROLE: 'cook' })).toMatch(/WORKER_ROLE: expected one of all, api, runner/);
    expect(refused({ JOB_QUEUE_URL: url })).toMatch(/JOB_SECRETS_KEY: with JOB_QUEUE_URL/);
    expect(refused({ JOB_QUEUE_URL: url, JOB_SECRETS_KEY: 'k', WORKER_ROLE: 'api', WORKER_MODE: 'vast' })).toMatch(
      /WORKER_ROLE: api is for the standalone HTTP API/,
    );
    // The Vast and RunPod platforms choose the worker that runs each job: no shared queue behind them.
    const vast = refused({ JOB_QUEUE_URL: url, JOB_SECRETS_KEY: 'k', WORKER_MODE: 'vast' });
    expect(vast).toMatch(/JOB_QUEUE_URL: .*standalone HTTP API \(WORKER_MODE=http\); with WORKER_MODE=vast .*autoscaler/);
    expect(vast).not.toContain('hunter2-pw');
    expect(refused({ JOB_QUEUE_URL: url, JOB_SECRETS_KEY: 'k', WORKER_MODE: 'runpod' })).toMatch(
      /JOB_QUEUE_URL: .*with WORKER_MODE=runpod .*RunPod\) brings its own job queue/,
    );
    // Chosen from the platform's own variables too, as when WORKER_MODE is unset.
    expect(refused({ JOB_QUEUE_URL: url, JOB_SECRETS_KEY: 'k', SERVE_API_LOCALLY: 'true' })).toMatch(/WORKER_MODE=runpod/);
    expect(loadConfig({ JOB_QUEUE_URL: url, JOB_SECRETS_KEY: 'k', WORKER_MODE: 'http' }).jobs.queueUrl).toBe(url);
  });

  test('COMFY_HOST=host:port is accepted; COMFYUI_API_BASE wins', () => {
    expect(loadConfig({ COMFY_HOST: '127.0.0.1:18188' }).comfy.baseUrl).toBe('http://127.0.0.1:18188');
    expect(loadConfig({ COMFY_HOST: 'a:1', COMFYUI_API_BASE: 'http://b:2/' }).comfy.baseUrl).toBe('http://b:2');
  });

  test.each([
    [{ API_PORT: 'eighty' }, 'API_PORT: expected an integer'],
    [{ WEBSOCKET_TRACE: 'maybe' }, 'WEBSOCKET_TRACE: expected true or false'],
    [{ WORKER_MODE: 'lambda' }, 'WORKER_MODE: expected one of http, vast, runpod'],
    [{ COMFYUI_API_BASE: 'ftp://x' }, 'COMFYUI_API_BASE: expected an http(s) URL'],
    [{ JOB_TIMEOUT_S: '-1' }, 'JOB_TIMEOUT_S: expected a number >= 0.1'],
    [{ JOB_QUEUE_TAKEOVER_S: 'soon' }, 'JOB_QUEUE_TAKEOVER_S: expected a number'],
  ])('a bad value names the variable: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  test("webhook settings: WEBHOOK_* first, then worker-comfyui's I2V_* names, then WEBHOOK_TIMEOUT", () => {
    expect(loadConfig({}).webhooks).toMatchObject({
      retries: 5,
      backoffS: 2,
      maxBackoffS: 60,
      timeoutS: 30,
      progressIntervalS: 2,
    });
    const i2v = loadConfig({
      I2V_WEBHOOK_RETRIES: '7',
      I2V_WEBHOOK_BACKOFF_S: '1.5',
      I2V_WEBHOOK_MAX_BACKOFF_S: '9',
      I2V_WEBHOOK_TIMEOUT_S: '11',
    }).webhooks;
    expect(i2v).toMatchObject({ retries: 7, backoffS: 1.5, maxBackoffS: 9, timeoutS: 11 });
    expect(loadConfig({ WEBHOOK_RETRIES: '2', I2V_WEBHOOK_RETRIES: '7' }).webhooks.retries).toBe(2);
    expect(loadConfig({ WEBHOOK_TIMEOUT: '45' }).webhooks.timeoutS).toBe(45);
    expect(() => loadConfig({ I2V_WEBHOOK_RETRIES: 'x' })).toThrow('I2V_WEBHOOK_RETRIES: expected an integer');
  });

  test("upper bounds, and STUCK_JOB_HOURS beyond a job's own deadline", () => {
    expect(() => loadConfig({ JOB_TIMEOUT_S: '3000000' })).toThrow('JOB_TIMEOUT_S: expected a number >= 0.1 and <= 2147483');
    expect(() => loadConfig({ HISTORY_POLL_INTERVAL_S: '7200' })).toThrow(
      'HISTORY_POLL_INTERVAL_S: expected a number >= 0.05 and <= 3600',
    );
    expect(() => loadConfig({ COMFY_READY_TIMEOUT_S: '0' })).toThrow('COMFY_READY_TIMEOUT_S: expected a number >= 1');
    expect(loadConfig({}).upkeep.stuckHours).toBe(2);
    expect(loadConfig({ JOB_TIMEOUT_S: '10800' }).upkeep.stuckHours).toBe(4);
    expect(() => loadConfig({ JOB_TIMEOUT_S: '10800', STUCK_JOB_HOURS: '2' })).toThrow(
      'STUCK_JOB_HOURS: 2 h is not longer than JOB_TIMEOUT_S (10800 s)',
    );
  });

  test("the doors' timeouts and connection cap: defaults, values, and headers within the request", () => {
    expect(loadConfig({}).http.limits).toEqual({
      headersTimeoutMs: 20_000,
      bodyTimeoutMs: 30_000,
      requestTimeoutMs: 300_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 1024,
    });
    expect(
      loadConfig({
        REQUEST_HEADERS_TIMEOUT_S: '5',
        REQUEST_BODY_TIMEOUT_S: '2.5',
        REQUEST_TIMEOUT_S: '60',
        KEEP_ALIVE_TIMEOUT_S: '1',
        MAX_CONNECTIONS: '10',
      }).http.limits,
    ).toEqual({
      headersTimeoutMs: 5000,
      bodyTimeoutMs: 2500,
      requestTimeoutMs: 60_000,
      keepAliveTimeoutMs: 1000,
      maxConnections: 10,
    });
    expect(() => loadConfig({ REQUEST_HEADERS_TIMEOUT_S: '90', REQUEST_TIMEOUT_S: '60' })).toThrow(
      'REQUEST_HEADERS_TIMEOUT_S: 90 s is longer than REQUEST_TIMEOUT_S (60 s)',
    );
    expect(() => loadConfig({ MAX_CONNECTIONS: '0' })).toThrow('MAX_CONNECTIONS: expected an integer >= 1');
  });

  test('every bad variable is reported at once', () => {
    expect(() => loadConfig({ API_PORT: 'x', MAX_BODY_MB: 'y' })).toThrow(/API_PORT[\s\S]*MAX_BODY_MB/);
  });

  test('Vast door defaults', () => {
    const config = loadConfig({ REPORT_ADDR: 'https://run.vast.ai', CONTAINER_ID: '1' }, '/srv');
    expect(config.mode).toBe('vast');
    expect(config.vast).toMatchObject({
      port: 3000,
      useSsl: false,
      certPath: '/etc/instance.crt',
      keyPath: '/etc/instance.key',
      reportAddrs: ['https://run.vast.ai'],
      signatureScheme: 'any',
      workloadPerRequest: 1,
      maxQueueTimeS: 10,
      masterToken: '',
      modelLog: undefined,
    });
    expect(config.benchmark).toEqual({
      jsonPath: undefined,
      width: 512,
      height: 512,
      steps: 20,
      runs: 8,
      cachePath: '/srv/.has_benchmark',
      minPerf: undefined,
    });
    expect(loadConfig({}).vast.reportAddrs).toEqual(['https://run.vast.ai']);
  });

  test('Vast: public port from VAST_TCP_PORT_<WORKER_PORT>, REPORT_ADDR list, schemes, UNSECURED, MODEL_LOG tokens', () => {
    const config = loadConfig({
      WORKER_PORT: '3100',
      VAST_TCP_PORT_3100: '26172',
      VAST_TCP_PORT_3000: '1',
      REPORT_ADDR: 'https://a.example/, https://b.example',
      VAST_SIGNATURE_SCHEME: 'all-fields',
      MODEL_LOG: '/var/log/portal/api-wrapper.log',
    });
    expect(config.vast.publicPort).toBe('26172');
    expect(config.vast.reportAddrs).toEqual(['https://a.example', 'https://b.example']);
    expect(config.vast.signatureScheme).toBe('fields');
    expect(config.vast.modelLog).toEqual({
      path: '/var/log/portal/api-wrapper.log',
      onLoad: ['BACKENDS_READY'],
      onError: ['BACKENDS_READY_TIMEOUT', 'BACKEND_UNRECOVERABLE', 'Application startup failed'],
    });
    expect(loadConfig({ VAST_SIGNATURE_SCHEME: 'url-only' }).vast.signatureScheme).toBe('url');
    expect(loadConfig({ VAST_SIGNATURE_SCHEME: 'fields', UNSECURED: 'yes' }).vast.signatureScheme).toBe('off');
    expect(loadConfig({ MODEL_LOG: 'x.log', MODEL_LOG_ON_LOAD: 'A, B', MODEL_LOG_ON_ERROR: 'C' }).vast.modelLog).toMatchObject({
      onLoad: ['A', 'B'],
      onError: ['C'],
    });
  });

  test.each([
    [{ VAST_SIGNATURE_SCHEME: 'rsa' }, 'VAST_SIGNATURE_SCHEME: expected one of'],
    [{ WORKER_PORT: 'x' }, 'WORKER_PORT: expected an integer'],
    [{ VAST_TCP_PORT_3000: 'abc' }, 'VAST_TCP_PORT_3000: expected a port number'],
    [{ BENCHMARK_RUNS: '0' }, 'BENCHMARK_RUNS: expected an integer >= 1'],
    [{ BENCHMARK_TEST_WIDTH: '512.5' }, 'BENCHMARK_TEST_WIDTH: expected an integer'],
    [{ BENCHMARK_MIN_PERF: 'fast' }, 'BENCHMARK_MIN_PERF: expected a number'],
    [{ MAX_QUEUE_TIME: '-1' }, 'MAX_QUEUE_TIME: expected a number >= 0'],
    [{ USE_SSL: 'maybe' }, 'USE_SSL: expected true or false'],
  ])('a bad Vast value names the variable: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  test('upkeep and access: defaults, values, validation', () => {
    const defaults = loadConfig({});
    expect(defaults.upkeep).toEqual({ intervalS: 3600, retentionHours: 24, stuckHours: 2 });
    expect(defaults.access).toEqual({ apiKey: undefined, adminApiKey: undefined });
    const set = loadConfig({
      CLEANUP_INTERVAL_S: '60',
      JOB_RETENTION_HOURS: '0.5',
      STUCK_JOB_HOURS: '3',
      API_KEY: 'k',
      ADMIN_API_KEY: 'a',
    });
    expect(set.upkeep).toEqual({ intervalS: 60, retentionHours: 0.5, stuckHours: 3 });
    expect(set.access).toEqual({ apiKey: 'k', adminApiKey: 'a' });
    expect(() => loadConfig({ CLEANUP_INTERVAL_S: '0' })).toThrow('CLEANUP_INTERVAL_S: expected a number >= 0.01');
    expect(() => loadConfig({ JOB_RETENTION_HOURS: '-1' })).toThrow('JOB_RETENTION_HOURS: expected a number >= 0');
    expect(() => loadConfig({ STUCK_JOB_HOURS: 'two' })).toThrow('STUCK_JOB_HOURS: expected a number');
  });
});
