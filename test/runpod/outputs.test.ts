// What a RunPod job's result carries: every output file in `images` (animations and videos with
// their real names), S3 uploads under <job id>/<filename> with a presigned URL, the Comfy.org key
// in ComfyUI's extra_data, and no credential in any log line.
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { startFakeRunpod, type FakeRunpod } from '../support/fake-runpod';
import { startS3, S3_KEY, S3_SECRET, type TestS3 } from '../support/s3';
import { tempDir } from '../support/tmp';
import type { TestWorker } from '../support/worker';
import { PNG_MAGIC, saveWorkflow } from '../support/workflows';
import { animationWorkflow, checkpointWorkflow, simFile, startRunpodWorker } from './support';

let sim: Simulator;
let fake: FakeRunpod;
let worker: TestWorker | undefined;

beforeEach(async () => {
  sim = await startSimulator({ models: ['v1-5-pruned-emaonly-fp16.safetensors', 'dreamshaper_8.safetensors'] });
  fake = await startFakeRunpod();
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await fake.close();
  await sim.close();
});

/** A worker-comfyui client: saves every `output.images[*]` it is given, by filename. */
function clientFiles(output: { images: Array<{ filename: string; type: string; data: string }> }): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const item of output.images) if (item.type === 'base64') files.set(item.filename, Buffer.from(item.data, 'base64'));
  return files;
}

test("animated and video outputs come back in images with their real names: SaveAnimatedWEBP, and VideoHelperSuite's gifs (.mp4)", async () => {
  worker = await startRunpodWorker(sim.url, fake);
  fake.enqueue({ id: 'anim', input: { workflow: animationWorkflow() } });
  const { body } = await fake.resultFor('anim');
  const images = body.output.images as Array<Record<string, string>>;
  const webp = images.find((i) => i.filename!.endsWith('.webp'))!;
  const mp4 = images.find((i) => i.filename!.endsWith('.mp4'))!;
  expect(webp).toMatchObject({
    filename: expect.stringMatching(/^anim_[0-9a-f]{8}_00001_\.webp$/),
    type: 'base64',
    node_id: '2',
  });
  expect(mp4).toMatchObject({
    filename: expect.stringMatching(/^video_[0-9a-f]{8}_00001\.mp4$/),
    subfolder: 'clips',
    type: 'base64',
    output_type: 'gifs',
    node_id: '3',
    mimetype: 'video/mp4',
  });
  // A client that reads output.images[*].data gets every file, byte for byte.
  const files = clientFiles(body.output);
  expect(files.size).toBe(2);
  expect(files.get(webp.filename!)).toEqual(simFile(sim.dataDir, 'output', '', webp.filename!));
  expect(files.get(mp4.filename!)).toEqual(simFile(sim.dataDir, 'output', 'clips', mp4.filename!));
  expect(files.get(mp4.filename!)!.subarray(4, 8).toString('latin1')).toBe('ftyp');
  expect(files.get(webp.filename!)!.subarray(8, 12).toString('latin1')).toBe('WEBP');
});

test('text outputs (PreviewAny) come under text, not among the files', async () => {
  worker = await startRunpodWorker(sim.url, fake);
  const workflow = saveWorkflow('t', { '5': { class_type: 'PreviewAny', inputs: { source: 'hello from a node' } } });
  fake.enqueue({ id: 'text', input: { workflow } });
  const { body } = await fake.resultFor('text');
  expect(body.output.images).toHaveLength(1);
  expect(body.output.text).toEqual([{ node_id: '5', type: 'text', data: 'hello from a node' }]);
});

describe('S3 (BUCKET_*)', () => {
  let s3: TestS3;
  beforeEach(async () => {
    s3 = await startS3(['outputs']);
  });
  afterEach(() => s3.stop());

  test('uploaded under <job id>/<filename>, returned as s3_url with a presigned URL', async () => {
    worker = await startRunpodWorker(sim.url, fake, {
      BUCKET_ENDPOINT_URL: `${s3.endpoint}/outputs`,
      BUCKET_ACCESS_KEY_ID: S3_KEY,
      BUCKET_SECRET_ACCESS_KEY: S3_SECRET,
    });
    fake.enqueue({ id: 'job-s3', input: { workflow: saveWorkflow('up') } });
    const { body } = await fake.resultFor('job-s3');
    const [item] = body.output.images;
    expect(item).toMatchObject({ filename: expect.stringMatching(/^up_[0-9a-f]{8}_00001_\.png$/), type: 's3_url' });
    expect(item.data).toMatch(new RegExp(`^${s3.endpoint}/outputs/job-s3/${item.filename}\\?.*X-Amz-Signature=`));
    const downloaded = Buffer.from(await (await fetch(item.data)).arrayBuffer());
    expect(downloaded.subarray(0, 8)).toEqual(PNG_MAGIC);
    expect(await s3.get('outputs', `job-s3/${item.filename}`)).toEqual(downloaded);
  });

  test('a failed upload fails the job with the reason, never a local path', async () => {
    worker = await startRunpodWorker(sim.url, fake, {
      BUCKET_ENDPOINT_URL: `${s3.endpoint}/outputs`,
      BUCKET_ACCESS_KEY_ID: 'NOT-A-KEY',
      BUCKET_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/NOTREAL',
      S3_CONNECT_ATTEMPTS: '1',
    });
    fake.enqueue({ id: 'job-s3-bad', input: { workflow: saveWorkflow('up') } });
    const { body, raw } = await fake.resultFor('job-s3-bad');
    expect(body.error).toMatch(/S3/);
    expect(body.output?.images).toBeUndefined();
    expect(raw).not.toContain('simulated_uploaded');
    expect(raw).not.toContain('wJalrXUtnFEMI');
  });
});

test("the Comfy.org key reaches ComfyUI's extra_data (the request's wins); no credential is ever logged", async () => {
  const secrets = {
    COMFY_ORG_API_KEY: 'comfyui-env-key-8b1f',
    RUNPOD_AI_API_KEY: fake.apiKey,
    BUCKET_SECRET_ACCESS_KEY: 'bucket-secret-77aa',
  };
  worker = await startRunpodWorker(
    sim.url,
    fake,
    {
      ...secrets,
      BUCKET_ACCESS_KEY_ID: 'AKIA-TEST',
      BUCKET_ENDPOINT_URL: 'http://127.0.0.1:9/outputs',
      WEBSOCKET_TRACE: 'true',
      LOG_LEVEL: 'trace',
    },
    { captureLogs: true },
  );
  fake.enqueue({ id: 'env-key', input: { workflow: saveWorkflow('k1'), return_outputs_as_base64: true } });
  fake.enqueue({
    id: 'request-key',
    input: { workflow: saveWorkflow('k2'), comfy_org_api_key: 'comfyui-request-key-41c2', return_outputs_as_base64: true },
  });
  fake.enqueue({ id: 'doc-key', input: { workflow: saveWorkflow('k3'), api_key_comfy_org: 'comfyui-doc-key-9d0e' } });
  await fake.resultFor('env-key');
  await fake.resultFor('request-key');
  await fake.resultFor('doc-key');
  const extra = sim.prompts.map((p) => (p.body as { extra_data?: { api_key_comfy_org?: string } }).extra_data?.api_key_comfy_org);
  expect(extra).toEqual(['comfyui-env-key-8b1f', 'comfyui-request-key-41c2', 'comfyui-doc-key-9d0e']);
  const logs = JSON.stringify(worker.logs);
  expect(worker.logs.length).toBeGreaterThan(20);
  for (const secret of [...Object.values(secrets), 'comfyui-request-key-41c2', 'comfyui-doc-key-9d0e']) {
    expect(logs).not.toContain(secret);
  }
  // Nor in what RunPod receives.
  for (const hit of fake.hits)
    for (const secret of ['comfyui-env-key-8b1f', 'comfyui-request-key-41c2']) {
      expect(hit.raw).not.toContain(secret);
    }
});

describe('NETWORK_VOLUME_DEBUG', () => {
  function volume(): string {
    const root = tempDir('volume-');
    fs.mkdirSync(path.join(root, 'models', 'checkpoints', 'sdxl'), { recursive: true });
    fs.mkdirSync(path.join(root, 'models', 'loras'), { recursive: true });
    fs.writeFileSync(path.join(root, 'models', 'checkpoints', 'dreamshaper_8.safetensors'), Buffer.alloc(2048));
    fs.writeFileSync(path.join(root, 'models', 'checkpoints', 'sdxl', 'base.ckpt'), Buffer.alloc(10));
    fs.writeFileSync(path.join(root, 'models', 'checkpoints', 'notes.txt'), 'not a model');
    fs.writeFileSync(path.join(root, 'models', 'loras', 'style.ckpt'), Buffer.alloc(10));
    return root;
  }

  test('reports the model folders at startup and again when a job names a missing model', async () => {
    const root = volume();
    worker = await startRunpodWorker(
      sim.url,
      fake,
      { NETWORK_VOLUME_DEBUG: 'true', NETWORK_VOLUME_PATH: root },
      { captureLogs: true },
    );
    const startup = worker.logs.find((l) => String(l.msg).startsWith('NETWORK_VOLUME_DEBUG: network volume at startup'));
    const report = startup?.report as any;
    expect(report).toMatchObject({ volume: root, mounted: true, models: { path: path.join(root, 'models'), exists: true } });
    expect(report.types.checkpoints).toEqual({
      path: path.join(root, 'models', 'checkpoints'),
      exists: true,
      files: [
        { name: 'dreamshaper_8.safetensors', mb: 0 },
        { name: path.join('sdxl', 'base.ckpt'), mb: 0 },
      ],
      ignored: ['notes.txt'],
    });
    expect(report.types.loras).toMatchObject({ files: [], ignored: ['style.ckpt'] });
    expect(report.types.vae).toMatchObject({ exists: false });

    fake.enqueue({ id: 'missing-model', input: { workflow: checkpointWorkflow('sdxl_turbo.safetensors') } });
    const { body } = await fake.resultFor('missing-model');
    expect(body.error).toBe(
      'Workflow validation failed:\n' +
        "• Node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'sdxl_turbo.safetensors' not in ['v1-5-pruned-emaonly-fp16.safetensors', 'dreamshaper_8.safetensors']\n\n" +
        'Available checkpoint models: v1-5-pruned-emaonly-fp16.safetensors, dreamshaper_8.safetensors',
    );
    const again = worker.logs.find((l) => String(l.msg).includes('a job named a model ComfyUI does not offer'));
    expect(again).toMatchObject({ requestId: 'missing-model', inputs: ['ckpt_name'], report: { volume: root } });
  });

  test('off by default: no report', async () => {
    worker = await startRunpodWorker(sim.url, fake, {}, { captureLogs: true });
    expect(worker.logs.some((l) => String(l.msg).startsWith('NETWORK_VOLUME_DEBUG'))).toBe(false);
  });
});
