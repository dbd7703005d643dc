// Starts the Vast.ai door (WORKER_MODE=vast): checks the variables Vast sets, starts the
// autoscaler reports, listens on WORKER_PORT (HTTPS with USE_SSL=true), and becomes ready in the
// background (public key, ComfyUI, benchmark); once loaded, a watchdog turns a lasting ComfyUI
// outage or a CUDA fault into the permanent error. A missing required variable is reported to the
// autoscaler and stops the worker; a server that cannot start keeps reporting its error.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import type express from 'express';
import { loadBenchmarkSource, loadPrompts, requiredClasses, StartupBenchmark } from '../../../benchmark';
import { ConfigError, type Config, type ConnectionLimits } from '../../config';
import type { JobRecord } from '../../jobs/types';
import type { StartDoor } from '../door';
import { createDoorServer } from '../limits';
import { ANSWER_DRAIN_MS, close, listen } from '../listen';
import { createVastApp } from './app';
import { AutoscalerClient } from './autoscaler';
import { LoadLedger } from './ledger';
import { becomeReady } from './readiness';
import { sendBootstrapFailure, VastReporter } from './reporter';
import { SignatureVerifier } from './signature';
import { VastState } from './state';
import { ComfyWatchdog } from './watchdog';

/** At a stop, how long the last reports may take. */
const REPORT_FLUSH_MS = 2_000;
/** A benchmark run's wait beyond its own job deadline and ComfyUI's ready timeout. */
const RUN_WAIT_SLACK_MS = 60_000;

/** The worker's public URL: http(s)://PUBLIC_IPADDR:VAST_TCP_PORT_<WORKER_PORT>. */
export function publicUrl(vast: Config['vast']): string | undefined {
  if (vast.publicIp === undefined || vast.publicPort === undefined) return undefined;
  return `${vast.useSsl ? 'https' : 'http'}://${vast.publicIp}:${vast.publicPort}`;
}

/** What is missing or malformed among the variables Vast sets, by name. */
function checkRequired(vast: Config['vast']): string[] {
  const problems: string[] = [];
  if (vast.containerId === undefined) problems.push('CONTAINER_ID is not set');
  else if (!/^\d+$/.test(vast.containerId)) problems.push(`CONTAINER_ID must be an integer, got "${vast.containerId}"`);
  if (vast.publicIp === undefined) problems.push('PUBLIC_IPADDR is not set');
  if (vast.publicPort === undefined)
    problems.push(`VAST_TCP_PORT_${vast.port} is not set (the public port of WORKER_PORT ${vast.port})`);
  if (vast.reportAddrs.length === 0) problems.push('REPORT_ADDR has no address');
  return problems;
}

/** HTTP, or HTTPS with the Vast-signed certificate after checking it matches our key. */
function createServer(app: express.Express, vast: Config['vast'], limits: ConnectionLimits): http.Server {
  if (!vast.useSsl) return createDoorServer(app, limits);
  const cert = fs.readFileSync(vast.certPath);
  const key = fs.readFileSync(vast.keyPath);
  if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
    throw new Error(`the certificate ${vast.certPath} does not match the key ${vast.keyPath}`);
  }
  return createDoorServer(app, limits, { cert, key });
}

export const startVastDoor: StartDoor = async (ctx) => {
  const { config, logger } = ctx;
  const vast = config.vast;
  const autoscaler = new AutoscalerClient({ addrs: vast.reportAddrs, logger });
  const url = publicUrl(vast);

  const problems = checkRequired(vast);
  if (problems.length > 0 || url === undefined) {
    const message = `Vast worker cannot start: ${problems.join('; ')}`;
    logger.fatal({ problems }, message);
    const id = vast.containerId !== undefined && /^\d+$/.test(vast.containerId) ? Number(vast.containerId) : 0;
    await sendBootstrapFailure(autoscaler, { id, mtoken: vast.masterToken, error_msg: message, url: url ?? '' });
    throw new ConfigError(message);
  }

  const ledger = new LoadLedger({ workloadPerRequest: vast.workloadPerRequest, maxQueueTimeS: vast.maxQueueTimeS });
  // With several GPUs, max_perf (and so admission) follows the backends that can take jobs; one
  // down or faulted counts for nothing, and never less than one backend's share is reported.
  const { backend } = ctx;
  if (backend.count > 1) ledger.capacityShare = () => Math.max(backend.readyCount, 1) / backend.count;
  const state = new VastState({ ledger, logger });
  const verifier = new SignatureVerifier({ scheme: vast.signatureScheme, logger });
  const reporter = new VastReporter({
    client: autoscaler,
    ledger,
    state,
    id: Number(vast.containerId),
    mtoken: vast.masterToken,
    url,
    logger,
  });
  reporter.start();

  let benchmark: StartupBenchmark | undefined;
  let classes: string[] = [];
  try {
    const source = loadBenchmarkSource(config.benchmark);
    classes = requiredClasses(source, ctx.contracts.modifiers);
    benchmark = new StartupBenchmark(ctx, {
      source,
      runs: config.benchmark.runs,
      workloadPerRequest: vast.workloadPerRequest,
      cachePath: config.benchmark.cachePath,
      minPerf: config.benchmark.minPerf,
      prompts: loadPrompts(),
      // Node timers cannot wait longer than 2^31 - 1 ms.
      runTimeoutMs: Math.min((config.jobs.timeoutS + config.comfy.readyTimeoutS) * 1000 + RUN_WAIT_SLACK_MS, 2 ** 31 - 1),
    });
  } catch (err) {
    state.fail(`Benchmark failed with error: ${(err as Error).message}`);
  }

  // The runner tells when a request's job leaves the queue and starts (work_started_at).
  const onStarted = (job: JobRecord) => {
    if (job.source !== 'vast') return;
    const entry = ledger.byJob(job.id);
    if (entry) ledger.started(entry);
  };
  ctx.events.on('started', onStarted);
  const watchdog = new ComfyWatchdog({
    backend: ctx.backend,
    events: ctx.events,
    state,
    logger,
    outageLimitMs: config.comfy.readyTimeoutS * 1000,
  });

  // The score the autoscaler is told, once loaded (max_perf follows the backends that can serve).
  ctx.metrics.benchmarkScore(() => (state.loaded ? ledger.maxPerf : undefined));
  const app = createVastApp({ ctx, ledger, state, verifier, benchmark });
  let server: http.Server | undefined;
  let localUrl: string | undefined;
  try {
    server = createServer(app, vast, config.http.limits);
    localUrl = await listen(server, config.http.host, vast.port, 'WORKER_PORT', vast.useSsl ? 'https' : 'http');
  } catch (err) {
    // PyWorker keeps reporting this error (every 10 s) rather than exiting.
    server = undefined;
    state.fail(`Worker Server failed to launch: ${(err as Error).message}`);
  }
  logger.info(
    {
      listening: localUrl,
      public: url,
      reportAddrs: vast.reportAddrs,
      scheme: verifier.scheme,
      workload: vast.workloadPerRequest,
    },
    'vast door started',
  );

  const stopper = new AbortController();
  const ready = state.errorMsg
    ? Promise.resolve()
    : becomeReady({
        backend: ctx.backend,
        logger,
        readyTimeoutMs: config.comfy.readyTimeoutS * 1000,
        modelLog: vast.modelLog,
        state,
        verifier,
        autoscaler,
        benchmark,
        requiredClasses: classes,
        signal: stopper.signal,
      })
        .then(() => {
          if (state.serving && !stopper.signal.aborted) watchdog.start();
        })
        .catch((err: unknown) => logger.error({ err }, 'vast: readiness failed unexpectedly'));

  return {
    url: localUrl ?? url,
    stop: async () => {
      stopper.abort();
      watchdog.stop();
      ctx.events.off('started', onStarted);
      if (server) await close(server, ANSWER_DRAIN_MS);
      await ready;
      // Tell the autoscaler about the requests answered while stopping.
      await reporter.stop(REPORT_FLUSH_MS);
    },
  };
};
