// A 100 MB output streams from ComfyUI to S3 without the worker's memory growing with it.
// The worker runs as its own process so its peak resident memory (VmHWM) can be read.
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { spawnWorker, type WorkerProcess } from '../support/process';
import { startS3, S3_KEY, S3_SECRET, type TestS3 } from '../support/s3';
import { tempDir } from '../support/tmp';
import { postJson, until } from '../support/worker';
import { fileSaverNode } from '../support/workflows';

const MB = 1024 * 1024;
let sim: Simulator;
let s3: TestS3;
let worker: WorkerProcess;

beforeAll(async () => {
  // A node that writes a file of the requested size, like a video saver would.
  sim = await startSimulator({
    extraNodes: { SaveBigFile: fileSaverNode('SaveBigFile', 'video') },
  });
  s3 = await startS3();
  worker = await spawnWorker({
    COMFYUI_API_BASE: sim.url,
    SQLITE_DB_PATH: path.join(tempDir('s3mem-'), 'jobs.db'),
    S3_ACCESS_KEY_ID: S3_KEY,
    S3_SECRET_ACCESS_KEY: S3_SECRET,
    S3_BUCKET_NAME: 'outputs',
    S3_ENDPOINT_URL: s3.endpoint,
  });
  await until(async () => (await fetch(`${worker.url}/health`)).status === 200, 15_000, 'worker healthy');
}, 30_000);
afterAll(async () => {
  await worker?.kill('SIGTERM');
  await s3?.stop();
  await sim?.close();
});

const bigJob = (size: number) =>
  postJson(`${worker.url}/generate/sync`, {
    input: { workflow_json: { '1': { class_type: 'SaveBigFile', inputs: { size } } } },
  });

test('100 MB output: uploaded whole, worker peak memory grows by far less than the file (under 40 MB; perf/bytes.ts measures the figure)', async () => {
  // Warm up every code path (S3 client, multipart, presign) with a 12 MB file first.
  const warm = await bigJob(12 * MB);
  expect(warm.status).toBe(200);
  const before = worker.peakRss();

  const res = await bigJob(100 * MB);
  expect(res.status).toBe(200);
  const growth = worker.peakRss() - before;

  const [out] = res.body.output;
  expect(out).toMatchObject({ output_type: 'files', subfolder: 'video', mimetype: 'application/octet-stream' });
  const head = await fetch(out.url, { method: 'HEAD' });
  expect(Number(head.headers.get('content-length'))).toBe(100 * MB);
  expect(growth).toBeLessThan(40 * MB);
}, 120_000);
