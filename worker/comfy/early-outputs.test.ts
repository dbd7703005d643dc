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

test('close() destroys files held but never handed out, and later frames open nothing', async () => {
  fs.writeFileSync(path.join(folder, 'b.png'), 'b');
  fs.writeFileSync(path.join(folder, 'c.png'), 'c');
  const early = new EarlyOutputs(disk, false);
  early.onEvent(executed('1', 'b.png', 'c.png'));
  await settled(2);
  expect(streams.some((v) => v.stream.destroyed)).toBe(false);
  early.close();
  expect(streams.every((v) => v.stream.destroyed)).toBe(true);
  early.onEvent(executed('2', 'b.png'));
  expect(opened).toEqual(['b.png', 'c.png']);
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
