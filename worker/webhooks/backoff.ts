// Retry policy for final webhook deliveries, as data: attempt n (n ≥ 1 retries done) waits
// min(base × 2^(n−1), max) plus up to 10 % jitter. With the defaults: 2, 4, 8, 16, 32 s.

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  baseS: number;
  maxS: number;
}

/** Seconds to wait before retry number `retry` (1 = the first retry). */
export function retryDelayS(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const delay = Math.min(policy.baseS * 2 ** (retry - 1), policy.maxS);
  return delay + delay * 0.1 * random();
}
