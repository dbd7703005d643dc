// Outputs read from ComfyUI's output folder (COMFYUI_OUTPUT_DIR) when the worker shares its disk:
// the bytes are the ones /view serves, no /view call is made, a file missing there is read through
// /view, and a name or link that would leave the folder is refused.
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { openOutputFile, outputPath } from '../../worker/comfy/output-files';
import { WorkerError } from '../../worker/errors';
import { tempDir } from '../support/tmp';
import { postJson, startTestWorker, type TestWorker } from '../support/worker';
import { saveWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker | undefined;
beforeAll(async () => {
  // Padding makes the output several chunks long, so a stream cut short would show.
  sim = await startSimulator({ outputPaddingBytes: 300_000 });
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});
afterAll(() => sim.close());

async function viewBytes(out: { filename: string; subfolder: string; type: string }): Promise<Buffer> {
  const query = new URLSearchParams({ filename: out.filename, subfolder: out.subfolder, type: out.type });
  const res = await fetch(`${sim.url}/view?${query}`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const views = () => sim.requests.filter((r) => r.path === '/view').length;

test('with COMFYUI_OUTPUT_DIR, outputs come from the disk byte for byte as /view serves them, without a /view call', async () => {
  worker = await startTestWorker(sim.url, { COMFYUI_OUTPUT_DIR: path.join(sim.dataDir, 'output') });
  const before = views();
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('disk/shared') } });
  expect(res.status).toBe(200);
  expect(views()).toBe(before);
  const [out] = res.body.output;
  expect(out).toMatchObject({ subfolder: 'disk', type: 'output', mimetype: 'image/png' });
  const inline = Buffer.from(out.data, 'base64');
  expect(inline.length).toBeGreaterThan(300_000);
  expect(inline.equals(await viewBytes(out))).toBe(true);
});

test('a file not in COMFYUI_OUTPUT_DIR is read through /view', async () => {
  worker = await startTestWorker(sim.url, { COMFYUI_OUTPUT_DIR: tempDir('elsewhere-') });
  const before = views();
  const res = await postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('fallback') } });
  expect(res.status).toBe(200);
  expect(views()).toBe(before + 1);
  const [out] = res.body.output;
  expect(Buffer.from(out.data, 'base64').equals(await viewBytes(out))).toBe(true);
});

describe("ComfyUI's path checks, and symbolic links", () => {
  const root = tempDir('outputs-');
  const outside = tempDir('outside-');
  fs.mkdirSync(path.join(root, 'sub'));
  fs.writeFileSync(path.join(root, 'sub', 'a.png'), 'inside');
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside');
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'link.png'));
  fs.symlinkSync(outside, path.join(root, 'linkdir'));
  const ref = (filename: string, subfolder = '') => ({ filename, subfolder, type: 'output' });

  test('names and subfolders inside the folder are found; missing ones are undefined', async () => {
    expect(outputPath(root, ref('a.png', 'sub'))).toBe(path.join(root, 'sub', 'a.png'));
    const found = await openOutputFile(root, ref('a.png', 'sub'));
    expect(found?.contentLength).toBe(6);
    found?.stream.destroy();
    expect(await openOutputFile(root, ref('missing.png'))).toBeUndefined();
    expect(await openOutputFile(root, ref('sub'))).toBeUndefined(); // a folder, not a file
  });

  test('a small file is read at once (its bytes at hand), a large one streamed, both whole', async () => {
    const large = Buffer.alloc(300_000, 7);
    fs.writeFileSync(path.join(root, 'large.png'), large);
    const small = await openOutputFile(root, ref('a.png', 'sub'));
    expect(small?.bytes?.toString()).toBe('inside');
    const big = await openOutputFile(root, ref('large.png'));
    expect(big?.bytes).toBeUndefined();
    const chunks: Buffer[] = [];
    for await (const chunk of big!.stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(large)).toBe(true);
  });

  test.each([
    ['../secret.txt', ''],
    ['/etc/passwd', ''],
    ['a..png', ''],
    ['', ''],
    ['secret.txt', '../outside'],
    ['secret.txt', '/etc'],
    ['a.png', 'sub/../../x'],
  ])('%j in subfolder %j is refused', async (filename, subfolder) => {
    await expect(openOutputFile(root, ref(filename, subfolder))).rejects.toThrow(WorkerError);
    await expect(openOutputFile(root, ref(filename, subfolder))).rejects.toThrow(/refused/);
  });

  test('a symbolic link out of the folder is refused, whether the file or its folder is the link', async () => {
    await expect(openOutputFile(root, ref('link.png'))).rejects.toThrow(/symbolic link/);
    await expect(openOutputFile(root, ref('secret.txt', 'linkdir'))).rejects.toThrow(/symbolic link/);
  });
});
