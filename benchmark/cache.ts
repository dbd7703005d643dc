// The benchmark's cache (BENCHMARK_CACHE_PATH, PyWorker's `.has_benchmark`): a restarted worker
// reads its max_perf instead of benchmarking again. The first line is the score as PyWorker
// writes it (a float); the second, ours only, keeps the details GET /benchmark shows.
import fs from 'node:fs';
import path from 'node:path';

export interface CachedBenchmark {
  maxPerf: number;
  details: Record<string, unknown> | undefined;
}

/** The cached score, or undefined when there is none (or it is unreadable, logged by the caller). */
export function readBenchmarkCache(file: string): CachedBenchmark | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const [first, second] = text.split('\n');
  const maxPerf = Number(first?.trim());
  if (!Number.isFinite(maxPerf) || maxPerf <= 0) return undefined;
  let details: Record<string, unknown> | undefined;
  try {
    details = second ? (JSON.parse(second) as Record<string, unknown>) : undefined;
  } catch {
    details = undefined;
  }
  return { maxPerf, details };
}

export function writeBenchmarkCache(file: string, maxPerf: number, details: Record<string, unknown>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${maxPerf}\n${JSON.stringify(details)}\n`);
  fs.renameSync(tmp, file);
}
