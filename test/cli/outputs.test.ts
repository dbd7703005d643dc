// Writing a job's outputs: both answer shapes, subfolders kept, names that would leave --out
// refused, undelivered files reported, S3 outputs downloaded from their URL.
import fs from 'node:fs';
import path from 'node:path';
import { CliError, EXIT } from '../../cli/exit-codes';
import { writeOutputs } from '../../cli/outputs';
import { parseSet } from '../../cli/request';
import { tempDir } from '../support/tmp';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const noDownload = async (): Promise<Buffer> => {
  throw new Error('no download expected');
};

test("the wrapper's Result: files under their names and subfolders, text printed, undelivered ones listed", async () => {
  const out = tempDir('outputs-');
  const written = await writeOutputs(
    {
      output: [
        { node_id: '9', output_type: 'images', filename: 'a_00001_.png', subfolder: '', data: b64('png') },
        { node_id: '10', output_type: 'gifs', filename: 'v_00001.mp4', subfolder: 'video', data: b64('mp4') },
        { node_id: '11', output_type: 'text', value: 'a caption' },
        {
          node_id: '12',
          output_type: 'images',
          filename: 'big.png',
          subfolder: '',
          error: 'file size 2 exceeds OUTPUT_BASE64_MAX_BYTES (1); not inlined',
        },
      ],
    },
    out,
    noDownload,
  );
  expect(written.files).toEqual([path.join(out, 'a_00001_.png'), path.join(out, 'video', 'v_00001.mp4')]);
  expect(fs.readFileSync(path.join(out, 'video', 'v_00001.mp4'), 'utf8')).toBe('mp4');
  expect(written.texts).toEqual([{ nodeId: '11', text: 'a caption' }]);
  expect(written.missing).toEqual(['big.png: file size 2 exceeds OUTPUT_BASE64_MAX_BYTES (1); not inlined']);
});

test("worker-comfyui's output: base64 written, s3_url downloaded, text kept", async () => {
  const out = tempDir('outputs-');
  const urls: string[] = [];
  const written = await writeOutputs(
    {
      images: [
        { filename: 'x.png', type: 'base64', data: b64('x') },
        { filename: 'y.png', type: 's3_url', data: 'https://bucket.example/job/y.png' },
      ],
      text: [{ type: 'text', data: 'hello', node_id: '5' }],
    },
    out,
    async (url) => {
      urls.push(url);
      return Buffer.from('y');
    },
  );
  expect(urls).toEqual(['https://bucket.example/job/y.png']);
  expect(fs.readFileSync(path.join(out, 'y.png'), 'utf8')).toBe('y');
  expect(written.files).toHaveLength(2);
  expect(written.texts).toEqual([{ nodeId: '5', text: 'hello' }]);
});

test('a name that would leave --out is refused (exit 3) and nothing is written outside', async () => {
  const root = tempDir('outputs-');
  const out = path.join(root, 'out');
  for (const item of [
    { filename: '../evil.png', subfolder: '' },
    { filename: 'evil.png', subfolder: '../..' },
    { filename: '/etc/evil.png', subfolder: '' },
  ]) {
    const err = await writeOutputs(
      { output: [{ node_id: '1', output_type: 'images', data: b64('x'), ...item }] },
      out,
      noDownload,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.jobFailed);
  }
  expect(fs.readdirSync(root)).toEqual([]);
});

test('--set values: JSON when they parse, text otherwise', () => {
  expect(parseSet('steps=20')).toEqual(['steps', 20]);
  expect(parseSet('denoise=0.5')).toEqual(['denoise', 0.5]);
  expect(parseSet('prompt=a cat, at dusk')).toEqual(['prompt', 'a cat, at dusk']);
  expect(parseSet('prompt="42"')).toEqual(['prompt', '42']);
  expect(parseSet('expr=a=b')).toEqual(['expr', 'a=b']);
  expect(() => parseSet('=1')).toThrow('expected key=value');
});
