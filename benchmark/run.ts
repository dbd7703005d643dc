// The startup GPU benchmark: one untimed warm-up, then BENCHMARK_RUNS timed runs, one at a time
// (the concurrency the worker serves with), each a real job through the core's queue and runner
// like any request. max_perf = the fastest run's workload per second. Sampler iterations per
// second come from ComfyUI's `progress` events. A failed run, no successful run, or a score below
// BENCHMARK_MIN_PERF fails the benchmark (the worker then reports a permanent error).
import { randomUUID } from 'node:crypto';
import type { ComfyEvent } from '../worker/comfy/types';
import { WRAPPER } from '../worker/contracts';
import type { ContractContext } from '../worker/contracts/context';
import { parseWrapperRequest } from '../worker/contracts/wrapper/request';
import { WorkerError } from '../worker/errors';
import type { BackendStatus } from '../worker/jobs/backend';
import type { JobEventSource } from '../worker/jobs/events';
import type { JobQueue } from '../worker/jobs/queue';
import type { JobRecord } from '../worker/jobs/types';
import type { Logger } from '../worker/observability/logger';
import { isObject } from '../worker/util/objects';
import { benchmarkFingerprint, readBenchmarkCache, writeBenchmarkCache, type BenchmarkFingerprint } from './cache';
import { buildRequestBody, describeSource, type BenchmarkSource } from './payload';

/** Seed 002's reference: an RTX 4090 does about 43 sampler it/s on SD1.5 at 512x512. */
export const REFERENCE_IT_PER_S = 43;
/** Runs whose durations spread wider than this (relative to their mean) are worth a warning. */
const SPREAD_WARNING = 0.2;

export interface BenchmarkOptions {
  source: BenchmarkSource;
  runs: number;
  workloadPerRequest: number;
  cachePath: string;
  minPerf: number | undefined;
  prompts: string[];
  /** Longest wait for one run's job (its own deadline normally ends it first). */
  runTimeoutMs: number;
}

export interface RunRecord {
  run: number | 'warmup';
  request_id: string;
  ok: boolean;
  seconds: number;
  workload_per_second: number;
  sampler_steps: number;
  it_per_s: number | null;
  /** The ComfyUI backend that ran it (with several GPUs, each is benchmarked). */
  backend?: string;
  error?: string;
}

export type BenchmarkStatus = 'pending' | 'running' | 'done' | 'cached' | 'failed';

/** The benchmark failed; the message is what the worker reports as its error. */
export class BenchmarkFailure extends Error {
  override readonly name = 'BenchmarkFailure';
}

/** What the benchmark uses: the same job facade a door uses, and the backend's GPU facts. */
export interface BenchmarkDeps {
  jobs: JobQueue;
  events: JobEventSource;
  backend: BackendStatus;
  contracts: ContractContext;
  logger: Logger;
}

/** Sampler steps and time of one job, from its websocket events. */
class SamplerClock {
  private readonly nodeStart = new Map<string, number>();
  private readonly perNode = new Map<string, { start: number; last: number; value: number }>();

  observe(event: ComfyEvent): void {
    const now = performance.now();
    const node = typeof event.data.node === 'string' ? event.data.node : undefined;
    if (event.type === 'executing' && node !== undefined) this.nodeStart.set(node, now);
    if (event.type === 'progress' && typeof event.data.value === 'number') {
      const key = node ?? '?';
      const seen = this.perNode.get(key);
      if (seen) Object.assign(seen, { last: now, value: event.data.value });
      else this.perNode.set(key, { start: this.nodeStart.get(key) ?? now, last: now, value: event.data.value });
    }
  }

  get steps(): number {
    let sum = 0;
    for (const p of this.perNode.values()) sum += p.value;
    return sum;
  }

  get seconds(): number {
    let sum = 0;
    for (const p of this.perNode.values()) sum += (p.last - p.start) / 1000;
    return sum;
  }
}

export class StartupBenchmark {
  private statusValue: BenchmarkStatus = 'pending';
  private warmup: RunRecord | undefined;
  private readonly runs: RunRecord[] = [];
  private score = 0;
  private itPerS: number | null = null;
  private spread: number | null = null;
  private error: string | undefined;
  private cachedDetails: Record<string, unknown> | undefined;
  private gpu: Record<string, unknown> | undefined;
  private fingerprint: BenchmarkFingerprint;

  constructor(
    private readonly core: BenchmarkDeps,
    private readonly opts: BenchmarkOptions,
  ) {
    this.fingerprint = benchmarkFingerprint(opts.source, opts.workloadPerRequest);
  }

  get status(): BenchmarkStatus {
    return this.statusValue;
  }

  /** Runs (or reads from the cache) and screens; resolves with max_perf, rejects with BenchmarkFailure. */
  async run(signal: AbortSignal): Promise<number> {
    const { logger } = this.core;
    this.gpu = await this.readGpu();
    const gpuName = typeof this.gpu?.name === 'string' ? this.gpu.name : null;
    // Several GPUs score together: their count is part of what the cached score is for.
    const backends = this.core.backend.count;
    const gpu = gpuName !== null && backends > 1 ? `${gpuName} x${backends}` : gpuName;
    this.fingerprint = benchmarkFingerprint(this.opts.source, this.opts.workloadPerRequest, gpu);
    const lookup = readBenchmarkCache(this.opts.cachePath, this.fingerprint);
    if (lookup.kind === 'miss' && lookup.reason !== 'none') {
      logger.info(
        { cache: this.opts.cachePath, reason: lookup.reason, fingerprint: this.fingerprint },
        `benchmark: ignoring the cached result (${lookup.reason}); benchmarking again`,
      );
    }
    if (lookup.kind === 'hit') {
      const { cached } = lookup;
      this.statusValue = 'cached';
      this.score = cached.maxPerf;
      this.cachedDetails = cached.details;
      logger.info({ maxPerf: cached.maxPerf, cache: this.opts.cachePath }, 'benchmark: using the cached result');
      this.screenScore();
      return this.score;
    }
    this.statusValue = 'running';
    logger.info({ workflow: describeSource(this.opts.source), runs: this.opts.runs, gpu: this.gpu?.name }, 'benchmark: starting');
    try {
      const warm = await this.round('warmup', signal);
      this.warmup = warm.find((r) => !r.ok) ?? warm[0];
      if (this.warmup && !this.warmup.ok) {
        throw new BenchmarkFailure(`Benchmark warm-up failed: ${this.warmup.error ?? 'unknown error'}`);
      }
      for (let i = 1; i <= this.opts.runs; i++) {
        for (const record of await this.round(i, signal)) {
          this.runs.push(record);
          logger.info(
            {
              run: i,
              seconds: record.seconds,
              perSecond: record.workload_per_second,
              itPerS: record.it_per_s,
              backend: record.backend,
            },
            `benchmark: run ${i}/${this.opts.runs}`,
          );
          if (!record.ok)
            throw new BenchmarkFailure(`Benchmark run ${i}/${this.opts.runs} failed: ${record.error ?? 'unknown error'}`);
        }
      }
      this.summarise();
      this.screenScore();
    } catch (err) {
      const message = err instanceof BenchmarkFailure ? err.message : `Benchmark failed with error: ${(err as Error).message}`;
      this.statusValue = 'failed';
      this.error = message;
      throw new BenchmarkFailure(message);
    }
    this.saveToCache();
    this.statusValue = 'done';
    return this.score;
  }

  /**
   * The score is valid whether or not it can be cached: an unwritable BENCHMARK_CACHE_PATH only
   * costs a benchmark at the next start, so it is a warning, never the worker's error.
   */
  private saveToCache(): void {
    try {
      writeBenchmarkCache(this.opts.cachePath, this.score, this.fingerprint, this.details());
    } catch (err) {
      this.core.logger.warn(
        { cache: this.opts.cachePath, err: (err as Error).message },
        'benchmark: could not write the cache (BENCHMARK_CACHE_PATH); the next start benchmarks again',
      );
    }
  }

  /** What GET /benchmark shows. */
  view(): Record<string, unknown> {
    return {
      status: this.statusValue,
      workflow: describeSource(this.opts.source),
      workload_per_request: this.opts.workloadPerRequest,
      runs_planned: this.opts.runs,
      max_perf: this.score,
      ...this.details(),
      ...(this.cachedDetails ? { cached: this.cachedDetails } : {}),
      gpu: this.gpu ?? null,
      ...(this.error !== undefined ? { error: this.error } : {}),
    };
  }

  private details(): Record<string, unknown> {
    const ok = this.runs.filter((r) => r.ok);
    return {
      warmup: this.warmup ?? null,
      runs: this.runs,
      average_per_second: ok.length > 0 ? ok.reduce((a, r) => a + r.workload_per_second, 0) / ok.length : null,
      it_per_s: this.itPerS,
      reference_it_per_s: REFERENCE_IT_PER_S,
      spread: this.spread,
    };
  }

  private summarise(): void {
    const { logger } = this.core;
    const ok = this.runs.filter((r) => r.ok);
    if (ok.length === 0) throw new BenchmarkFailure('No successful responses from benchmark');
    // Each backend's best run; the worker serves them all at once, so their scores add up.
    const best = new Map<string, number>();
    for (const r of ok) best.set(r.backend ?? '', Math.max(best.get(r.backend ?? '') ?? 0, r.workload_per_second));
    this.score = [...best.values()].reduce((a, b) => a + b, 0);
    const steps = ok.reduce((a, r) => a + r.sampler_steps, 0);
    const samplerSeconds = ok.reduce((a, r) => a + (r.it_per_s ? r.sampler_steps / r.it_per_s : 0), 0);
    this.itPerS = steps > 0 && samplerSeconds > 0 ? steps / samplerSeconds : null;
    const durations = ok.map((r) => r.seconds);
    const mean = durations.reduce((a, b) => a + b, 0) / durations.length;
    this.spread = mean > 0 ? (Math.max(...durations) - Math.min(...durations)) / mean : 0;
    logger.info(
      { maxPerf: this.score, itPerS: this.itPerS, referenceItPerS: REFERENCE_IT_PER_S, gpu: this.gpu?.name },
      `benchmark: max_perf ${this.score.toFixed(4)}/s; sampler ${this.itPerS?.toFixed(1) ?? '?'} it/s (reference: RTX 4090 about ${REFERENCE_IT_PER_S} it/s on SD1.5)`,
    );
    if (this.spread > SPREAD_WARNING) {
      logger.warn(
        { spread: this.spread, seconds: durations },
        `benchmark: run times vary by ${(this.spread * 100).toFixed(0)}% (over 20%): thermal, power or configuration issues?`,
      );
    }
  }

  private screenScore(): void {
    const min = this.opts.minPerf;
    if (min !== undefined && this.score < min) {
      const message = `Benchmark score ${this.score.toFixed(4)}/s is below BENCHMARK_MIN_PERF ${min}/s`;
      this.statusValue = 'failed';
      this.error = message;
      throw new BenchmarkFailure(message);
    }
  }

  /** One run on every backend at once (each takes one: an idle backend is preferred). */
  private round(run: number | 'warmup', signal: AbortSignal): Promise<RunRecord[]> {
    const backends = Math.max(1, this.core.backend.count);
    return Promise.all(Array.from({ length: backends }, () => this.runOnce(run, signal)));
  }

  private async runOnce(run: number | 'warmup', signal: AbortSignal): Promise<RunRecord> {
    const { jobs, events, contracts } = this.core;
    const requestId = `benchmark-${randomUUID()}`;
    const clock = new SamplerClock();
    const listener = (job: JobRecord, event: ComfyEvent) => {
      if (job.id === requestId) clock.observe(event);
    };
    events.on('comfyEvent', listener);
    const started = performance.now();
    let final: JobRecord | undefined;
    let error: string | undefined;
    try {
      const body = buildRequestBody(this.opts.source, requestId, this.opts.prompts);
      const parsed = await parseWrapperRequest(body, contracts);
      // Timings only: benchmark images go to no bucket, no webhook and no database row.
      const { webhook: _webhook, s3: _s3, ...spec } = parsed.spec;
      await jobs.submit({
        id: parsed.id,
        source: 'benchmark',
        contract: WRAPPER,
        sync: true,
        spec: { ...spec, skipDelivery: true },
        secrets: {},
      });
      final = await this.waitFor(requestId, signal);
      if (final.status !== 'completed') error = final.error?.message ?? `job ended ${final.status}`;
    } catch (err) {
      error = (err as Error).message;
    } finally {
      events.off('comfyEvent', listener);
    }
    const seconds = (performance.now() - started) / 1000;
    const ok = final?.status === 'completed';
    return {
      run,
      request_id: requestId,
      ok,
      seconds,
      workload_per_second: ok && seconds > 0 ? this.opts.workloadPerRequest / seconds : 0,
      sampler_steps: clock.steps,
      it_per_s: clock.seconds > 0 ? clock.steps / clock.seconds : null,
      ...(final?.backend ? { backend: final.backend } : {}),
      ...(error !== undefined ? { error } : {}),
    };
  }

  /** The job's end, or a cancel once the run's deadline (or the worker's stop) comes first. */
  private async waitFor(id: string, signal: AbortSignal): Promise<JobRecord> {
    const deadline = AbortSignal.timeout(this.opts.runTimeoutMs);
    try {
      return await this.core.jobs.wait(id, AbortSignal.any([signal, deadline]));
    } catch (err) {
      const reason = deadline.aborted
        ? `did not finish within ${Math.round(this.opts.runTimeoutMs / 1000)} s`
        : 'the worker is stopping';
      await this.core.jobs.cancel(id, new WorkerError(504, 'timeout', `Benchmark run ${reason}`)).catch(() => undefined);
      throw new Error(`run ${reason}`, { cause: err });
    }
  }

  private async readGpu(): Promise<Record<string, unknown> | undefined> {
    const stats = await this.core.backend.systemStats(5_000);
    if (!stats) return undefined;
    const devices = stats.devices;
    const first = Array.isArray(devices) ? devices[0] : undefined;
    if (!isObject(first)) return undefined;
    const pick = (k: string) => (k in first ? { [k]: first[k] } : {});
    return { ...pick('name'), ...pick('type'), ...pick('index'), ...pick('vram_total'), ...pick('vram_free') };
  }
}
