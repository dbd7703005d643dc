import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchmarkFingerprint, readBenchmarkCache, writeBenchmarkCache } from './cache';
import { loadBenchmarkSource } from './payload';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cache-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const defaults = { width: 512, height: 512, steps: 20 };
const sd15 = benchmarkFingerprint(loadBenchmarkSource(defaults), 1);

test('the first line is the score (PyWorker reads it), the second the fingerprint and our details', () => {
  const file = path.join(dir, 'sub', '.has_benchmark');
  expect(readBenchmarkCache(file, sd15)).toEqual({ kind: 'miss', reason: 'none' });
  writeBenchmarkCache(file, 0.125, sd15, { runs: [1] });
  const [first, second] = fs.readFileSync(file, 'utf8').split('\n');
  expect(first).toBe('0.125');
  expect(JSON.parse(second!)).toEqual({ fingerprint: sd15, details: { runs: [1] } });
  expect(readBenchmarkCache(file, sd15)).toEqual({ kind: 'hit', cached: { maxPerf: 0.125, details: { runs: [1] } } });
  fs.writeFileSync(file, '0\n');
  expect(readBenchmarkCache(file, sd15)).toEqual({ kind: 'miss', reason: 'none' }); // a zero score is no result
});

test("a cache without a fingerprint (PyWorker's one-line file, or our older format) is not reused", () => {
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, '2.5');
  expect(readBenchmarkCache(file, sd15)).toEqual({ kind: 'miss', reason: 'no fingerprint' });
  fs.writeFileSync(file, '2.5\n{"runs":[]}\n');
  expect(readBenchmarkCache(file, sd15)).toEqual({ kind: 'miss', reason: 'no fingerprint' });
  fs.writeFileSync(file, '2.5\nnot json\n');
  expect(readBenchmarkCache(file, sd15)).toEqual({ kind: 'miss', reason: 'no fingerprint' });
});

test('another WORKLOAD_PER_REQUEST, GPU, size, step count or workflow file content: the cache is stale', () => {
  const file = path.join(dir, 'stale');
  writeBenchmarkCache(file, 3, sd15, {});
  const stale = { kind: 'miss', reason: 'other workload, workflow or GPU' };
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource(defaults), 100))).toEqual(stale);
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource(defaults), 1, 'NVIDIA GeForce RTX 4090'))).toEqual(
    stale,
  );
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource({ ...defaults, steps: 30 }), 1))).toEqual(stale);
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource({ ...defaults, width: 768 }), 1))).toEqual(stale);
  // The same settings again: reused.
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource(defaults), 1)).kind).toBe('hit');

  const wf = path.join(dir, 'wf.json');
  fs.writeFileSync(wf, JSON.stringify({ '1': { class_type: 'KSampler', inputs: { steps: 3 } } }));
  const fromFile = benchmarkFingerprint(loadBenchmarkSource({ ...defaults, jsonPath: wf }), 1);
  expect(fromFile.workflow_sha256).not.toBe(sd15.workflow_sha256);
  writeBenchmarkCache(file, 3, fromFile, {});
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource({ ...defaults, jsonPath: wf }), 1)).kind).toBe('hit');
  fs.writeFileSync(wf, JSON.stringify({ '1': { class_type: 'KSampler', inputs: { steps: 30 } } }));
  expect(readBenchmarkCache(file, benchmarkFingerprint(loadBenchmarkSource({ ...defaults, jsonPath: wf }), 1))).toEqual(stale);
});

test('a cache that cannot be written throws (the benchmark logs it) and leaves no temporary file', () => {
  const blocker = path.join(dir, 'a-file');
  fs.writeFileSync(blocker, 'x');
  expect(() => writeBenchmarkCache(path.join(blocker, '.has_benchmark'), 1, sd15, {})).toThrow();
  const target = path.join(dir, 'is-a-dir');
  fs.mkdirSync(path.join(target, 'x'), { recursive: true }); // rename onto a non-empty directory fails
  expect(() => writeBenchmarkCache(target, 1, sd15, {})).toThrow();
  expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
});
