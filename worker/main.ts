// Entry point: read the environment once, start the worker for the configured mode, stop cleanly
// on SIGTERM/SIGINT. A bad configuration exits with status 2 and a message naming the variable.
import { startWorker, type RunningWorker } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger, stdoutDestination } from './observability/logger';

/**
 * `--simulate`: start the ComfyUI simulator in this process and point the worker at it, so the
 * API can be tried without a GPU (SIMULATOR_NODE_DELAY_MS / SIMULATOR_STEP_DELAY_MS pace it).
 */
async function withSimulator(config: Config): Promise<{ config: Config; sim: { close(): Promise<void> } }> {
  // Loaded only here: the simulator is a test tool, not part of the worker a deployment runs.
  const { startSimulator } = await import('../simulator/index.js');
  const sim = await startSimulator({ nodeDelayMs: config.simulator.nodeDelayMs, stepDelayMs: config.simulator.stepDelayMs });
  process.stderr.write(
    `comfyui-worker: --simulate: using the ComfyUI SIMULATOR at ${sim.url} (no GPU, placeholder images), not ComfyUI\n`,
  );
  return { config: { ...config, comfy: { ...config.comfy, baseUrl: sim.url, baseUrls: [sim.url] } }, sim };
}

/** Beyond SHUTDOWN_GRACE_S, what the rest of a stop (answers, webhooks, the database) may take. */
const STOP_SLACK_MS = 15_000;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`comfyui-worker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.log.level, stdoutDestination());
  let sim: { close(): Promise<void> } | undefined;
  let worker: RunningWorker | undefined;
  let stopping: string | undefined;
  const stop = async (): Promise<void> => {
    await worker?.stop();
    await sim?.close();
  };
  // Registered before anything starts: a SIGTERM while the worker is starting (ComfyUI still
  // loading, the database opening) is a clean stop too, once the start has got far enough to undo.
  const shutdown = (signal: string) => {
    if (stopping !== undefined) return;
    stopping = signal;
    logger.info({ signal }, 'stopping');
    // A stop that cannot finish (a stuck socket, a wedged disk) must not keep the process alive.
    setTimeout(
      () => {
        logger.error('stop did not finish in time; exiting');
        process.exit(1);
      },
      config.jobs.shutdownGraceS * 1000 + STOP_SLACK_MS,
    ).unref();
    // During startup, the start's own continuation stops what it started.
    if (worker === undefined) return;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    if (process.argv.includes('--simulate')) ({ config, sim } = await withSimulator(config));
    if (stopping === undefined) worker = await startWorker(config, { logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      logger.fatal(err.message);
      process.stderr.write(`comfyui-worker: ${err.message}\n`);
      await sim?.close();
      process.exit(2);
    }
    throw err;
  }
  if (stopping !== undefined) {
    // The signal came while starting: stop what started, and exit as a stop does.
    await stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`comfyui-worker: fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
