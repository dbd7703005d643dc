// Small helpers shared by the perf scripts: medians, percentiles, a flag reader, a printed table.

export function median(values: number[]): number {
  return percentile(values, 50);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Reads `--name value` from argv as a number, or the fallback. */
export function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  const value = at >= 0 ? Number(process.argv[at + 1]) : NaN;
  return Number.isFinite(value) ? value : fallback;
}

export function report(title: string, figures: Record<string, number>): void {
  console.log(`\n${title}`);
  for (const [key, value] of Object.entries(figures)) {
    const shown = Number.isInteger(value) ? String(value) : value.toFixed(3);
    console.log(`  ${key.padEnd(28)} ${shown}`);
  }
}

/** Runs `fn(0..n-1)` one after another; the milliseconds each took. */
export async function timeEach(n: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    times.push(performance.now() - t0);
  }
  return times;
}
