// Inline delivery keeps a small output's bytes with its file (so the waiting caller is answered
// without reading the file back), and streams larger or unannounced ones to the file only.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { tempDir } from '../../test/support/tmp';
import type { OutputReader } from '../comfy/output-files';
import { KEEP_IN_MEMORY_BYTES, keepInline } from './inline';

const ref = { nodeId: '9', kind: 'images', filename: 'a.png', subfolder: '', type: 'output' };

function reader(bytes: Buffer, announced: boolean): OutputReader {
  return {
    view: async () => ({
      stream: Readable.from([bytes.subarray(0, 3), bytes.subarray(3)]),
      contentType: 'image/png',
      contentLength: announced ? bytes.length : undefined,
    }),
  };
}

const signal = new AbortController().signal;

test('a small output of announced length: written to its file, and its bytes returned with it', async () => {
  const bytes = Buffer.from('a small output file');
  const file = path.join(tempDir('inline-'), '0');
  const kept = await keepInline(reader(bytes, true), ref, 1_000, file, signal);
  expect(kept).toMatchObject({ ok: true, size: bytes.length, contentType: 'image/png' });
  expect(kept.ok && kept.bytes?.equals(bytes)).toBe(true);
  expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
});

test('an output of unknown length or over the in-memory size is streamed to its file, no bytes kept', async () => {
  const dir = tempDir('inline-');
  const big = Buffer.alloc(KEEP_IN_MEMORY_BYTES + 1, 7);
  for (const [name, bytes, announced] of [
    ['unknown', Buffer.from('no length'), false],
    ['big', big, true],
  ] as const) {
    const file = path.join(dir, name);
    const kept = await keepInline(reader(bytes, announced), ref, 10_000_000, file, signal);
    expect(kept).toMatchObject({ ok: true, size: bytes.length });
    expect(kept.ok && kept.bytes).toBeUndefined();
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  }
});

test('a small output over OUTPUT_BASE64_MAX_BYTES even though announced smaller: not kept, no file', async () => {
  const bytes = Buffer.from('longer than announced and than the cap');
  const file = path.join(tempDir('inline-'), '0');
  const lying: OutputReader = {
    view: async () => ({ stream: Readable.from([bytes]), contentType: undefined, contentLength: 5 }),
  };
  const kept = await keepInline(lying, ref, 10, file, signal);
  expect(kept).toMatchObject({ ok: false, size: 5 });
  expect(fs.existsSync(file)).toBe(false);
});
