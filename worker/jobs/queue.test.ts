import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecretBox } from '../secrets/secret-box';
import { JobEvents } from './events';
import { JobQueue } from './queue';
import { RunnerPool } from './runner-pool';
import { SqliteJobStore } from './sqlite/store';
import type { JobRecord, JobResult } from './types';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'queue-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A completed job with one inline output kept in its file, as the store has it. */
async function completedJob(): Promise<{ queue: JobQueue; job: JobRecord }> {
  const store = new SqliteJobStore({
    path: path.join(dir, 'jobs.db'),
    secrets: SecretBox.open({ keyFile: path.join(dir, 'key') }),
  });
  const queue = new JobQueue({
    store,
    runner: new RunnerPool([], () => undefined as never),
    events: new JobEvents(),
    maxQueueSize: 10,
  });
  const spec = {
    workflow: {},
    images: [],
    includeTempOutputs: false,
    forceBase64: false,
    includeComfyResponse: false,
    allowPartial: false,
  };
  const { id } = await store.insert({ id: `job-${Date.now()}`, source: 'http', contract: 'wrapper', sync: true, spec });
  const claimed = (await store.claimNext('p-1'))!;
  const file = store.outputSink(claimed).file(0);
  fs.writeFileSync(file, 'from the file');
  const result: JobResult = {
    outputs: [{ node_id: '9', output_type: 'images', filename: 'a.png', subfolder: '', type: 'output', blob: 0 }],
    warnings: [],
    timings: {} as never,
  };
  await store.finish(id, 'completed', { result, files: [{ path: file, size: 13 }] });
  return { queue, job: (await store.get(id))! };
}

describe('inline outputs of a finished job', () => {
  it('come from what the runner kept when the record carries it (bytes, or its file), else from the store', async () => {
    const { queue, job } = await completedJob();
    const output = job.result!.outputs[0]!;
    const fromFile = (await queue.inlineFiles(job))(output);
    expect(fromFile?.read?.().toString()).toBe('from the file');
    expect((await queue.inlineData(job))(output)).toBe(Buffer.from('from the file').toString('base64'));

    // The runner's final record: its bytes are used as they are, the file is not read back.
    const kept = { ...job, kept: [{ path: '/nonexistent', size: 14, bytes: Buffer.from('kept in memory') }] };
    const fromMemory = (await queue.inlineFiles(kept))(output);
    expect(fromMemory).toMatchObject({ size: 14 });
    expect(fromMemory?.read?.().toString()).toBe('kept in memory');
    expect((await queue.inlineData(kept))(output)).toBe(Buffer.from('kept in memory').toString('base64'));

    // A large output (no bytes kept) is read from the file the runner names, not the store's row.
    const other = path.join(dir, 'written-by-the-runner');
    fs.writeFileSync(other, 'the runner file');
    const large = { ...job, kept: [{ path: other, size: 15 }] };
    expect((await queue.inlineFiles(large))(output)?.read?.().toString()).toBe('the runner file');
    expect((await queue.inlineData(large))(output)).toBe(Buffer.from('the runner file').toString('base64'));

    // A file of several pieces streams whole (each piece copied: the reader reuses its buffer).
    const bytes = Buffer.from(Array.from({ length: 200_003 }, (_, i) => (i * 7) % 251));
    fs.writeFileSync(other, bytes);
    const pieces: Buffer[] = [];
    for await (const piece of (await queue.inlineFiles({ ...job, kept: [{ path: other, size: bytes.length }] }))(
      output,
    )!.open()) {
      pieces.push(Buffer.from(piece));
    }
    expect(pieces.length).toBeGreaterThan(1);
    expect(Buffer.concat(pieces)).toEqual(bytes);
  });
});
