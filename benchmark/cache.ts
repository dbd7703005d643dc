// The benchmark's cache (BENCHMARK_CACHE_PATH, PyWorker's `.has_benchmark`): a restarted worker
// reads its max_perf instead of benchmarking again. The first line is the score as PyWorker
// writes it (a float); the second, ours only, is JSON with the fingerprint of what produced the
// score (the workload per request, a hash of the benchmark workflow, the GPU) and the details GET
// /benchmark shows. max_perf is workload per second, so a score measured with another
// WORKLOAD_PER_REQUEST or another workflow would be wrong: a cache whose fingerprint differs, or
// has none (PyWorker's own one-line file), is ignored and the benchmark runs again.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { BenchmarkSource } from './payload';

export interface BenchmarkFingerprint {
  workload_per_request: number;
  /** sha256 of the benchmark workflow's description (size and steps, or the file's content). */
  workflow_sha256: string;
  /** The GPU ComfyUI reports (the cache may sit on a volume that moves to another machine). */
  gpu: string | null;
}

export interface CachedBenchmark {
  maxPerf: number;
  details: Record<string, unknown> | undefined;
}

export type CacheLookup =
  | { kind: 'hit'; cached: CachedBenchmark }
  | { kind: 'miss'; reason: 'none' | 'no fingerprint' | 'other workload, workflow or GPU' };

/** What the score depends on. A file's content counts, not its path (an edited file is another workflow). */
export function benchmarkFingerprint(
  source: BenchmarkSource,
  workloadPerRequest: number,
  gpu: string | null = null,
): BenchmarkFingerprint {
  const described =
    source.kind === 'file'
      ? { kind: 'file', body: source.body }
      : { kind: source.kind, width: source.width, height: source.height, steps: source.steps };
  return {
    workload_per_request: workloadPerRequest,
    workflow_sha256: createHash('sha256').update(JSON.stringify(described)).digest('hex'),
    gpu,
  };
}

function sameFingerprint(a: unknown, b: BenchmarkFingerprint): boolean {
  if (typeof a !== 'object' || a === null) return false;
  const f = a as Partial<BenchmarkFingerprint>;
  return (
    f.workload_per_request === b.workload_per_request && f.workflow_sha256 === b.workflow_sha256 && (f.gpu ?? null) === b.gpu
  );
}

/** The cached score if there is one for this fingerprint (an unreadable file is no cache). */
export function readBenchmarkCache(file: string, fingerprint: BenchmarkFingerprint): CacheLookup {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { kind: 'miss', reason: 'none' };
  }
  const [first, second] = text.split('\n');
  const maxPerf = Number(first?.trim());
  if (!Number.isFinite(maxPerf) || maxPerf <= 0) return { kind: 'miss', reason: 'none' };
  let meta: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = second ? JSON.parse(second) : undefined;
    meta = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    meta = undefined;
  }
  if (meta?.fingerprint === undefined) return { kind: 'miss', reason: 'no fingerprint' };
  if (!sameFingerprint(meta.fingerprint, fingerprint)) return { kind: 'miss', reason: 'other workload, workflow or GPU' };
  const details =
    typeof meta.details === 'object' && meta.details !== null ? (meta.details as Record<string, unknown>) : undefined;
  return { kind: 'hit', cached: { maxPerf, details } };
}

export function writeBenchmarkCache(
  file: string,
  maxPerf: number,
  fingerprint: BenchmarkFingerprint,
  details: Record<string, unknown>,
): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, `${maxPerf}\n${JSON.stringify({ fingerprint, details })}\n`);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
