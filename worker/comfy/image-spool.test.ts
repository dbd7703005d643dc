import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tempDir } from '../../test/support/tmp';
import { ImageSpool, isSpoolable } from './image-spool';

const dir = tempDir('spool-');
let n = 0;

/** Spools `text` (a JSON string's content, as in the body) written in pieces of `piece` bytes. */
async function spool(text: string, piece: number) {
  const file = path.join(dir, `f${++n}`);
  const sink = new ImageSpool(file);
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i += piece) await sink.write(raw.subarray(i, i + piece));
  const image = await sink.end();
  return { image, bytes: fs.readFileSync(file) };
}

test.each([1, 3, 7, 65536])('base64 and data URIs decode to the same file, in pieces of %i bytes', async (piece) => {
  const bytes = randomBytes(5000);
  const b64 = bytes.toString('base64');
  for (const text of [
    b64,
    `data:image/png;base64,${b64}`,
    `data:image\\/png;base64,${b64.replace(/\//g, '\\/')}`,
    b64.replace(/(.{60})/g, '$1\\n'),
  ]) {
    const result = await spool(text, piece);
    expect(result.image).toMatchObject({ size: 5000, problem: undefined });
    expect(result.bytes.equals(bytes)).toBe(true);
  }
});

test.each([
  ['not base64', '****', 'base64'],
  ['padding in the middle', 'AA==AA', 'base64'],
  ['empty', '', 'base64'],
  ['a data URI not in base64', 'data:image/png,AAAA', 'data_uri'],
  ['"data:" without a comma', 'data:AAAA', 'data_uri'],
  ['a data URI with nothing after the comma', 'data:image/png;base64,', 'base64'],
])('%s: the problem is kept for the admission check', async (_name, text, problem) => {
  for (const piece of [1, 100]) expect((await spool(text, piece)).image.problem).toBe(problem);
});

test('broken JSON inside the text is a syntax error', async () => {
  const sink = new ImageSpool(path.join(dir, 'broken'));
  await expect(sink.write(Buffer.from('AAAA\\q'))).rejects.toThrow(SyntaxError);
});

test('URLs are not spooled, escaped or not', () => {
  expect(isSpoolable(Buffer.from('https://example.com/a.png'))).toBe(false);
  expect(isSpoolable(Buffer.from('HTTP:\\/\\/example.com/a.png'))).toBe(false);
  expect(isSpoolable(Buffer.from('aHR0cHM6Ly9leGFtcGxl'))).toBe(true);
  expect(isSpoolable(Buffer.from('data:image/png;base64,AAAA'))).toBe(true);
});
