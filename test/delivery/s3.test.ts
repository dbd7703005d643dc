// S3 delivery against a real S3-compatible server on 127.0.0.1.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { startS3, S3_KEY, S3_SECRET, type TestS3 } from '../support/s3';
import { getJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { PNG_MAGIC, saveWorkflow } from '../support/workflows';

let sim: Simulator;
let s3: TestS3;
const workers: TestWorker[] = [];

beforeAll(async () => {
  sim = await startSimulator();
  s3 = await startS3(['outputs', 'other']);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  await s3?.stop();
  await sim?.close();
});

async function worker(env: Record<string, string>): Promise<TestWorker> {
  const w = await startTestWorker(sim.url, env);
  workers.push(w);
  return w;
}

const envS3 = () => ({
  S3_ACCESS_KEY_ID: S3_KEY,
  S3_SECRET_ACCESS_KEY: S3_SECRET,
  S3_BUCKET_NAME: 'outputs',
  S3_ENDPOINT_URL: s3.endpoint,
  S3_REGION: 'us-east-1',
});

const sync = (w: TestWorker, input: Record<string, unknown>) => postJson(`${w.url}/generate/sync`, { input });

async function viewBytes(filename: string, subfolder = ''): Promise<Buffer> {
  const query = new URLSearchParams({ filename, subfolder, type: 'output' });
  return Buffer.from(await (await fetch(`${sim.url}/view?${query}`)).arrayBuffer());
}

test('env-level settings: uploaded under <job id>/<subfolder>/<file>, presigned URL gives the same bytes', async () => {
  const w = await worker(envS3());
  const res = await sync(w, { request_id: 's3-env-1', workflow_json: saveWorkflow('shots/cat') });
  expect(res.status).toBe(200);
  const [out] = res.body.output;
  expect(out.data).toBeUndefined();
  expect(out.url).toMatch(new RegExp(`^${s3.endpoint}/outputs/s3-env-1/shots/cat_[0-9a-f]{8}_00001_\\.png\\?.*X-Amz-Signature=`));
  expect(out.url).toContain('X-Amz-Expires=604800');
  const downloaded = Buffer.from(await (await fetch(out.url)).arrayBuffer());
  expect(downloaded.subarray(0, 8).equals(PNG_MAGIC)).toBe(true);
  expect(downloaded.equals(await viewBytes(out.filename, 'shots'))).toBe(true);
  expect((await s3.get('outputs', `s3-env-1/shots/${out.filename}`))?.equals(downloaded)).toBe(true);
  const metrics = await (await fetch(`${w.url}/metrics`)).text();
  expect(metrics).toContain('comfyui_worker_s3_uploads_total{result="uploaded"} 1');
  expect(metrics).not.toContain('comfyui_worker_s3_uploads_total{result="failed"}');
});

const ENV_SECRET = 'env-secret-8f3a9c1e';
test('an output delivered to S3 leaves no file behind; asked for inline too, it is kept for the answer', async () => {
  const w = await worker(envS3());
  const outputs = path.join(`${w.dbPath}-files`, 'outputs');
  const uploaded = await sync(w, { workflow_json: saveWorkflow('s3_only') });
  expect(uploaded.status).toBe(200);
  expect(uploaded.body.output[0].url).toBeDefined();
  expect(fs.readdirSync(outputs)).toEqual([]);

  const both = await sync(w, { workflow_json: saveWorkflow('s3_inline'), return_outputs_as_base64: true });
  expect(both.status).toBe(200);
  const [out] = both.body.output;
  expect(Buffer.from(out.data, 'base64').equals(await viewBytes(out.filename))).toBe(true);
  const kept = fs.readdirSync(outputs);
  expect(kept).toHaveLength(1);
  expect(fs.readFileSync(path.join(outputs, kept[0]!, '0')).equals(await viewBytes(out.filename))).toBe(true);
});

test('request-level settings win over the environment, field by field', async () => {
  // The environment points at the other bucket with a key the server does not know.
  const w = await worker({
    ...envS3(),
    S3_ACCESS_KEY_ID: 'NOT-A-KEY',
    S3_SECRET_ACCESS_KEY: ENV_SECRET,
    S3_BUCKET_NAME: 'other',
    ALLOW_PRIVATE_URLS: 'true',
    S3_PREFIX: 'env-prefix',
  });
  const res = await sync(w, {
    request_id: 's3-req-1',
    workflow_json: saveWorkflow('req'),
    s3: {
      access_key_id: S3_KEY,
      secret_access_key: S3_SECRET,
      bucket_name: 'outputs',
      endpoint_url: s3.endpoint,
      prefix: 'team-a',
    },
  });
  expect(res.status).toBe(200);
  expect(res.body.output[0].url).toContain('/outputs/team-a/s3-req-1/');
  expect(await s3.get('outputs', `team-a/s3-req-1/${res.body.output[0].filename}`)).toBeDefined();

  // Without the request block the (broken) environment settings apply, and fail clearly.
  const envOnly = await sync(w, { workflow_json: saveWorkflow('envonly') });
  expect(envOnly.status).toBe(500);
  expect(envOnly.body.error.code).toBe('output_error');
  expect(envOnly.body.message).toContain('S3 rejected the credentials');
  expect(envOnly.body.message).toContain('InvalidAccessKeyId');
  expect(JSON.stringify(envOnly.body)).not.toContain(S3_SECRET === 'S3RVER' ? 'NOT-A-KEY' : S3_SECRET);
  // The secret itself never reaches the client (the server's own pair is S3RVER/S3RVER, which
  // cannot be told apart from the key id, so the environment's secret here is a unique one).
  expect(JSON.stringify(envOnly.body)).not.toContain(ENV_SECRET);
});

test("worker-comfyui's BUCKET_ENDPOINT_URL (bucket in the URL) works with a custom endpoint", async () => {
  const w = await worker({
    BUCKET_ENDPOINT_URL: `${s3.endpoint}/outputs`,
    BUCKET_ACCESS_KEY_ID: S3_KEY,
    BUCKET_SECRET_ACCESS_KEY: S3_SECRET,
  });
  const res = await sync(w, { request_id: 's3-bucket-url', workflow_json: saveWorkflow('bucketurl') });
  expect(res.status).toBe(200);
  expect(await s3.get('outputs', `s3-bucket-url/${res.body.output[0].filename}`)).toBeDefined();
});

test('return_outputs_as_base64 inlines the bytes even with S3 configured (and still uploads)', async () => {
  const w = await worker(envS3());
  const res = await sync(w, { workflow_json: saveWorkflow('both'), return_outputs_as_base64: true });
  expect(res.status).toBe(200);
  const [out] = res.body.output;
  expect(Buffer.from(out.data, 'base64').equals(Buffer.from(await (await fetch(out.url)).arrayBuffer()))).toBe(true);
});

test('a missing bucket is reported clearly', async () => {
  const w = await worker({ ...envS3(), S3_BUCKET_NAME: 'no-such-bucket' });
  const res = await sync(w, { workflow_json: saveWorkflow('nobucket') });
  expect(res.status).toBe(500);
  expect(res.body.output).toEqual([]);
  expect(res.body.message).toContain('bucket no-such-bucket does not exist (NoSuchBucket)');
  expect(res.body.error.details.outputs[0].upload_error).toContain('NoSuchBucket');
  expect(await (await fetch(`${w.url}/metrics`)).text()).toContain('comfyui_worker_s3_uploads_total{result="failed"} 1');
});

test('the S3 server down during the upload: retried, then reported on the output and the job', async () => {
  // The worker talks to S3 through a proxy that counts requests and, while "down", resets each
  // connection as a request arrives, so every attempt is seen at the server side.
  const proxy = await countingProxy(s3.endpoint);
  try {
    const w = await worker({ ...envS3(), S3_ENDPOINT_URL: proxy.endpoint, S3_CONNECT_ATTEMPTS: '2', S3_CONNECT_TIMEOUT: '1' });
    proxy.down = true;
    const res = await sync(w, { workflow_json: saveWorkflow('s3down') });
    expect(res.status).toBe(500);
    expect(res.body.message).toContain('cannot reach S3');
    // Two whole-file attempts (the file is read from ComfyUI again), each tried
    // S3_CONNECT_ATTEMPTS times by the SDK: four PUTs of the one object.
    expect(proxy.requests).toHaveLength(4);
    expect(new Set(proxy.requests)).toEqual(
      new Set([expect.stringMatching(/^PUT \/outputs\/[^/]+\/s3down_[0-9a-f]{8}_00001_\.png/)]),
    );
    proxy.down = false;
    const after = await sync(w, { workflow_json: saveWorkflow('s3back') });
    expect(after.status).toBe(200);
  } finally {
    await proxy.close();
  }
});

/** An HTTP proxy to `target` that records "METHOD path" of each request; while `down`, it resets
 *  the connection instead of forwarding. */
async function countingProxy(target: string) {
  const requests: string[] = [];
  const state = { down: false };
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (state.down) return void req.socket.resetAndDestroy(); // a TCP reset: ECONNRESET at the client
    // Headers unchanged (Host included), so the request's signature still holds at the server.
    const upstream = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get down() {
      return state.down;
    },
    set down(value: boolean) {
      state.down = value;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('incomplete or malformed s3 blocks and private endpoints are 400s naming the field', async () => {
  const w = await worker({});
  const cases: Array<[unknown, string, string]> = [
    ['s3://bucket', 'input.s3', 'must be an object'],
    [{ bucket_name: 5 }, 'input.s3.bucket_name', 'must be a string'],
    [
      { bucket_name: 'outputs' },
      'input.s3',
      'access_key_id (S3_ACCESS_KEY_ID), secret_access_key (S3_SECRET_ACCESS_KEY) missing',
    ],
    [
      { bucket_name: 'b', access_key_id: 'k', secret_access_key: 's', endpoint_url: 'ftp://x' },
      'input.s3.endpoint_url',
      'http or https',
    ],
    [
      { bucket_name: 'b', access_key_id: 'k', secret_access_key: 's', endpoint_url: s3.endpoint },
      'input.s3.endpoint_url',
      'private',
    ],
  ];
  for (const [block, field, message] of cases) {
    const res = await sync(w, { workflow_json: saveWorkflow(), s3: block });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toContain(message);
    expect(JSON.stringify(res.body)).not.toContain('"s"');
  }
});

test("the job API answers S3 outputs in worker-comfyui's shape: type s3_url, the presigned URL in data", async () => {
  const w = await worker(envS3());
  const submitted = await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('runs3') } });
  expect(submitted.status).toBe(200);
  const id = submitted.body.job_id as string;
  await until(async () => (await getJson(`${w.url}/status/${id}`)).body.status === 'completed', 10_000, 'completed');
  const status = await getJson(`${w.url}/status/${id}`);
  const [image] = status.body.result.images;
  expect(image).toMatchObject({ type: 's3_url', node_id: '2' });
  expect(image.data).toContain(`/outputs/${id}/runs3_`);
  expect((await fetch(image.data)).status).toBe(200);
});
