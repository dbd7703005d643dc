// The startup GPU benchmark (used by the Vast door): payload choice, runs and screening, cache.
export { readBenchmarkCache, writeBenchmarkCache, type CachedBenchmark } from './cache';
export {
  buildRequestBody,
  describeSource,
  loadBenchmarkSource,
  loadPrompts,
  requiredClasses,
  type BenchmarkSource,
} from './payload';
export { BenchmarkFailure, REFERENCE_IT_PER_S, StartupBenchmark, type BenchmarkOptions, type RunRecord } from './run';
