// What the startup benchmark sends: an API-wrapper request body, rebuilt for every run with a
// random prompt and a random seed, so ComfyUI never answers a run from its cache.
//   1. BENCHMARK_JSON_PATH, else benchmark/benchmark.json if present: an API-format workflow
//      (sent as workflow_json; every integer `seed`/`noise_seed` input is randomised per run and
//      `__RANDOM_INT__` works as in requests), or a whole request body `{"input": {...}}`.
//   2. Otherwise SD1.5 Text2Image at BENCHMARK_TEST_WIDTH x HEIGHT and BENCHMARK_TEST_STEPS.
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ModifierRegistry } from '../worker/contracts/wrapper/modifiers';
import { isObject } from '../worker/util/objects';

export const FALLBACK_PROMPT = 'a still life on a wooden table, soft daylight';
const SEED_INPUTS = new Set(['seed', 'noise_seed']);

export type BenchmarkSource =
  | { kind: 'file'; path: string; body: Record<string, unknown> }
  | { kind: 'text2image'; width: number; height: number; steps: number };

/** The repository root (misc/ and benchmark/ live there), from the source tree or from dist/. */
export function repoRoot(): string {
  const candidates = [path.resolve(__dirname, '..'), path.resolve(__dirname, '..', '..')];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'misc'))) ?? process.cwd();
}

/**
 * Picks the benchmark workflow. An explicitly configured file that cannot be used is an error
 * (benchmarking something else would report a misleading max_perf).
 */
export function loadBenchmarkSource(opts: { jsonPath?: string; width: number; height: number; steps: number }): BenchmarkSource {
  const bundled = path.join(repoRoot(), 'benchmark', 'benchmark.json');
  const file = opts.jsonPath ?? (fs.existsSync(bundled) ? bundled : undefined);
  if (file === undefined) return { kind: 'text2image', width: opts.width, height: opts.height, steps: opts.steps };
  const what = opts.jsonPath !== undefined ? 'BENCHMARK_JSON_PATH' : 'benchmark/benchmark.json';
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${what} (${file}) is not a readable JSON file: ${(err as Error).message}`);
  }
  if (!isObject(parsed) || Object.keys(parsed).length === 0) throw new Error(`${what} (${file}) must hold a JSON object`);
  const body = isObject(parsed.input) ? parsed : { input: { workflow_json: parsed } };
  return { kind: 'file', path: file, body };
}

/** Non-empty lines of misc/test_prompts.txt (the fallback prompt when there are none). */
export function loadPrompts(file = path.join(repoRoot(), 'misc', 'test_prompts.txt')): string[] {
  try {
    const lines = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    return lines.length > 0 ? lines : [FALLBACK_PROMPT];
  } catch {
    return [FALLBACK_PROMPT];
  }
}

/** A random seed; below 2^48 (randomInt's limit) so it is exact in JSON and valid for every sampler. */
export const randomSeed = (): number => randomInt(0, 2 ** 48 - 1);

export function describeSource(source: BenchmarkSource): string {
  return source.kind === 'file'
    ? `workflow ${source.path}`
    : `Text2Image (SD1.5) ${source.width}x${source.height}, ${source.steps} steps`;
}

/** One run's request body, with its own request id, prompt and seed. */
export function buildRequestBody(
  source: BenchmarkSource,
  requestId: string,
  prompts: string[],
): { input: Record<string, unknown> } {
  const prompt = prompts[randomInt(0, prompts.length)] ?? FALLBACK_PROMPT;
  if (source.kind === 'text2image') {
    return {
      input: {
        request_id: requestId,
        modifier: 'Text2Image',
        modifications: { prompt, width: source.width, height: source.height, steps: source.steps, seed: randomSeed() },
      },
    };
  }
  const input = structuredClone(source.body.input) as Record<string, unknown>;
  input.request_id = requestId;
  if (isObject(input.workflow_json)) input.workflow_json = randomiseSeeds(input.workflow_json);
  if (isObject(input.modifications) && 'seed' in input.modifications) input.modifications.seed = randomSeed();
  return { input };
}

function randomiseSeeds(workflow: Record<string, unknown>): Record<string, unknown> {
  for (const node of Object.values(workflow)) {
    if (!isObject(node) || !isObject(node.inputs)) continue;
    for (const [name, value] of Object.entries(node.inputs)) {
      if (SEED_INPUTS.has(name) && typeof value === 'number' && Number.isInteger(value)) node.inputs[name] = randomSeed();
    }
  }
  return workflow;
}

/** Node classes the benchmark workflow needs from ComfyUI's /object_info. */
export function requiredClasses(source: BenchmarkSource, modifiers: ModifierRegistry): string[] {
  const body = buildRequestBody(source, 'classes', [FALLBACK_PROMPT]).input;
  let workflow: unknown = body.workflow_json;
  if (!isObject(workflow) || Object.keys(workflow).length === 0) {
    try {
      workflow = modifiers.apply(String(body.modifier), {}, 'benchmark.modifications');
    } catch {
      return []; // an unknown modifier fails in the first run, with the modifier's own message
    }
  }
  const classes = new Set<string>();
  for (const node of Object.values(workflow as Record<string, unknown>)) {
    if (isObject(node) && typeof node.class_type === 'string') classes.add(node.class_type);
  }
  return [...classes].sort();
}
