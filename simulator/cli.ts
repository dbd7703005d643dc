// Command line: starts one simulator and logs its URL.
//   node dist/simulator/cli.js --port 8188 [--host 127.0.0.1] [--node-delay-ms 10]
//     [--step-delay-ms 5] [--models a.safetensors,b.safetensors] [--data-dir DIR]
//     [--output-padding-bytes N] [--timing instant|recorded]
// It also takes the flags ComfyUI is started with (docker/start.sh passes them), so it can stand in
// for ComfyUI's command line: --listen HOST (as --host), --verbose LEVEL (reported in the startup
// line), --disable-auto-launch, --disable-metadata, --log-stdout (no effect here).

import { parseArgs } from 'node:util';
import { startSimulator } from './simulator';
import type { Simulator, SimulatorOptions } from './types';

function nonNegative(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

const COMFY_LOG_LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];

export function parseCliArgs(argv: string[]): SimulatorOptions & { logLevel: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'node-delay-ms': { type: 'string' },
      'step-delay-ms': { type: 'string' },
      models: { type: 'string' },
      'data-dir': { type: 'string' },
      'output-padding-bytes': { type: 'string' },
      timing: { type: 'string' },
      // ComfyUI's own flags
      listen: { type: 'string' },
      verbose: { type: 'string' },
      'disable-auto-launch': { type: 'boolean' },
      'disable-metadata': { type: 'boolean' },
      'log-stdout': { type: 'boolean' },
    },
    strict: true,
  });
  // ComfyUI's default level is INFO; like ComfyUI's argparse, anything else is refused.
  const logLevel = values.verbose ?? 'INFO';
  if (!COMFY_LOG_LEVELS.includes(logLevel))
    throw new Error(`--verbose must be one of ${COMFY_LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  const opts: SimulatorOptions & { logLevel: string } = { port: nonNegative('port', values.port) ?? 8188, logLevel };
  const host = values.host ?? values.listen;
  if (host !== undefined) opts.host = host;
  const nodeDelay = nonNegative('node-delay-ms', values['node-delay-ms']);
  if (nodeDelay !== undefined) opts.nodeDelayMs = nodeDelay;
  const stepDelay = nonNegative('step-delay-ms', values['step-delay-ms']);
  if (stepDelay !== undefined) opts.stepDelayMs = stepDelay;
  if (values.models !== undefined)
    opts.models = values.models
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
  if (values['data-dir'] !== undefined) opts.dataDir = values['data-dir'];
  const padding = nonNegative('output-padding-bytes', values['output-padding-bytes']);
  if (padding !== undefined) opts.outputPaddingBytes = padding;
  if (values.timing !== undefined) {
    if (values.timing !== 'instant' && values.timing !== 'recorded') {
      throw new Error(`--timing must be instant or recorded, got ${JSON.stringify(values.timing)}`);
    }
    opts.timing = values.timing;
  }
  return opts;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<Simulator> {
  const { logLevel, ...opts } = parseCliArgs(argv);
  const sim = await startSimulator(opts);
  process.stdout.write(`ComfyUI simulator listening on ${sim.url} (data: ${sim.dataDir}, log level: ${logLevel})\n`);
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return sim;
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`comfyui simulator: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
