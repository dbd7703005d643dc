import { retryDelayS } from './backoff';

test('exponential from the base, capped, with at most 10% jitter', () => {
  const policy = { retries: 5, baseS: 2, maxS: 60 };
  expect([1, 2, 3, 4, 5].map((n) => retryDelayS(policy, n, () => 0))).toEqual([2, 4, 8, 16, 32]);
  expect(retryDelayS({ ...policy, maxS: 10 }, 5, () => 0)).toBe(10);
  expect(retryDelayS(policy, 1, () => 1)).toBeCloseTo(2.2);
  for (let i = 0; i < 100; i++) {
    const d = retryDelayS(policy, 3);
    expect(d).toBeGreaterThanOrEqual(8);
    expect(d).toBeLessThanOrEqual(8.8);
  }
});
