import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ViewStream } from './http';
import { EarlyOutputs } from './early-outputs';
import { openOutputFile, type OutputReader } from './output-files';

// A real folder read through the disk reader; the count says how often each file was opened.
const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'early-'));
afterAll(() => fs.rmSync(folder, { recursive: true, force: true }));
const opened: string[] = [];
const streams: ViewStream[] = [];
const disk: OutputReader = {
  async view(ref) {
    opened.push(ref.filename);
    const view = await openOutputFile(folder, ref);
    if (view) streams.push(view);
    return view;
  },
};
beforeEach(() => {
  opened.length = 0;
  streams.length = 0;
});

const executed = (node: string, ...names: string[]) => ({
  type: 'executed',
  data: { node, output: { images: names.map((filename) => ({ filename, subfolder: '', type: 'output' })) }, prompt_id: 'p' },
});
const ref = (filename: string) => ({ filename, subfolder: '', type: 'output' });
const read = async (view: ViewStream | undefined) => {
  const chunks: Buffer[] = [];
  for await (const chunk of view!.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
};

test('an announced file is opened at once and handed out once; later reads open it again', async () => {
  fs.writeFileSync(path.join(folder, 'a.png'), 'bytes of a');
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('9', 'a.png'));
  expect(opened).toEqual(['a.png']);
  expect(await read(await early.view(ref('a.png')))).toBe('bytes of a');
  expect(opened).toEqual(['a.png']);
  expect(await read(await early.view(ref('a.png')))).toBe('bytes of a');
  expect(opened).toEqual(['a.png', 'a.png']);
  early.close();
});

const settled = async (count: number) => {
  while (streams.length < count) await new Promise((resolve) => setImmediate(resolve));
};

const BIG = 1024 * 1024 + 1;

test('a small file is read whole at once: delivered from memory even if the file is gone meanwhile', async () => {
  // A reader that streams (as /view does), so the early read is the one that reads it whole.
  const streamed: OutputReader = {
    async view(r) {
      const file = path.join(folder, r.filename);
      if (!fs.existsSync(file)) return undefined;
      const view = { stream: fs.createReadStream(file), contentType: undefined, contentLength: fs.statSync(file).size };
      opened.push(r.filename);
      streams.push(view);
      return view;
    },
  };
  fs.writeFileSync(path.join(folder, 's.png'), 'small');
  const early = new EarlyOutputs(streamed, false);
  early.onEvent(executed('1', 's.png'));
  await settled(1);
  while (!streams[0]!.stream.destroyed) await new Promise((resolve) => setImmediate(resolve));
  fs.rmSync(path.join(folder, 's.png'));
  const view = await early.view(ref('s.png'));
  expect(view?.contentLength).toBe(5);
  expect(view?.bytes?.toString()).toBe('small');
  expect(await read(view)).toBe('small');
  expect(opened).toEqual(['s.png']);
  early.close();
});

test('a small file on disk is read while it is opened, and handed out as its bytes', async () => {
  fs.writeFileSync(path.join(folder, 'd.png'), 'on disk');
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'd.png'));
  await settled(1);
  fs.rmSync(path.join(folder, 'd.png'));
  const view = await early.view(ref('d.png'));
  expect(view?.bytes?.toString()).toBe('on disk');
  expect(await read(view)).toBe('on disk');
  expect(opened).toEqual(['d.png']);
  early.close();
});

test('close() destroys large files held but never handed out, and later frames open nothing', async () => {
  fs.writeFileSync(path.join(folder, 'b.png'), Buffer.alloc(BIG));
  fs.writeFileSync(path.join(folder, 'c.png'), Buffer.alloc(BIG));
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'b.png', 'c.png'));
  await settled(2);
  await new Promise((resolve) => setImmediate(resolve));
  expect(streams.some((v) => v.stream.destroyed)).toBe(false);
  early.close();
  expect(streams.every((v) => v.stream.destroyed)).toBe(true);
  early.onEvent(executed('2', 'b.png'));
  expect(opened).toEqual(['b.png', 'c.png']);
});

test('a large file held open is handed out as it is, unread', async () => {
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'b.png'));
  await settled(1);
  const view = await early.view(ref('b.png'));
  expect(view?.stream).toBe(streams[0]!.stream);
  expect((await read(view)).length).toBe(BIG);
  early.close();
});

test('a file whose opening completes after close() is destroyed as it arrives', async () => {
  fs.writeFileSync(path.join(folder, 'd.png'), 'd');
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'd.png'));
  early.close();
  await settled(1);
  await new Promise((resolve) => setImmediate(resolve));
  expect(streams[0]!.stream.destroyed).toBe(true);
});

test('a file not there yet when announced is read afresh when delivered; temp previews only when asked', async () => {
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'late.png'));
  early.onEvent({
    type: 'executed',
    data: { node: '2', output: { images: [{ filename: 't.png', subfolder: '', type: 'temp' }] } },
  });
  fs.writeFileSync(path.join(folder, 'late.png'), 'late');
  expect(await read(await early.view(ref('late.png')))).toBe('late');
  expect(opened).toEqual(['late.png', 'late.png']);
  early.close();
});

test('at most four files are held per run', () => {
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6'));
  expect(opened).toEqual(['f1', 'f2', 'f3', 'f4']);
  early.close();
});

test('a caller waiting for an early open that has not finished stops at its own abort', async () => {
  const never: OutputReader = { view: () => new Promise<ViewStream | undefined>(() => undefined) };
  const early = new EarlyOutputs(never, false);
  early.onEvent(executed('1', 'stuck.png'));
  const controller = new AbortController();
  const taking = early.view(ref('stuck.png'), controller.signal);
  controller.abort(new Error('cancelled by the caller'));
  await expect(taking).rejects.toThrow('cancelled by the caller');
  early.close();
});
