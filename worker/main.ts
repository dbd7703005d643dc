// Entry point: read the environment once, start the worker for the configured mode, stop cleanly
// on SIGTERM/SIGINT. A bad configuration exits with status 2 and a message naming the variable.
import { startWorker } from './app';
import { ConfigError, loadConfig } from './config';
import { createLogger } from './observability/logger';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`comfyui-worker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.log.level);
  let worker;
  try {
    worker = await startWorker(config, { logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      logger.fatal(err.message);
      process.stderr.write(`comfyui-worker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'stopping');
    worker.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`comfyui-worker: fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
