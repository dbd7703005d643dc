// The startup GPU benchmark (used by the Vast door): payload choice, runs and screening, cache.
export {
  benchmarkFingerprint,
  readBenchmarkCache,
  writeBenchmarkCache,
  type BenchmarkFingerprint,
  type CachedBenchmark,
  type CacheLookup,
} from './cache';
export {
  buildRequestBody,
  describeSource,
  loadBenchmarkSource,
  loadPrompts,
  requiredClasses,
  type BenchmarkSource,
} from './payload';
export { BenchmarkFailure, REFERENCE_IT_PER_S, StartupBenchmark, type BenchmarkOptions, type RunRecord } from './run';
