// Payloads on the data volume, not in the database or the heap: input images decoded from the
// request body into spool files as it arrives (and deleted when their job ends), outputs kept in
// the job's folder beside the database (deleted with the job), answers streamed from there, and
// all of it still served after a restart.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startSimulator, type Simulator } from '../../simulator';
import { loadWorkflow, paddedPng } from '../support/images';
import { tempDir } from '../support/tmp';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { PNG_MAGIC, saveWorkflow } from '../support/workflows';
import { waitForStatus } from './support';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 2 });
  worker = await startTestWorker(sim.url, { HISTORY_POLL_INTERVAL_S: '0.5' });
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});
afterEach(() => worker.runner.resume());

const filesOf = (w: TestWorker) => `${w.dbPath}-files`;
const list = (w: TestWorker, sub: string) => fs.readdirSync(path.join(filesOf(w), sub));

/** POSTs a body as given, optionally chunked (no Content-Length), in pieces. */
function postRaw(url: string, body: Buffer, chunked = false): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (!chunked) headers['content-length'] = body.length;
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.once('error', reject);
    for (let i = 0; i < body.length; i += 100_000) req.write(body.subarray(i, i + 100_000));
    req.end();
  });
}

describe('input images', () => {
  let image: Buffer;
  beforeAll(async () => {
    image = await paddedPng(3_000_000);
  });

  test.each([
    ['with a Content-Length, as base64', false, (b: Buffer) => b.toString('base64')],
    [
      'chunked, as a data URI with escaped slashes',
      true,
      (b: Buffer) => `data:image\\/png;base64,${b.toString('base64').replace(/\//g, '\\/')}`,
    ],
  ])(
    'a large body %s: decoded to a spool file while read, uploaded byte for byte, deleted when the job ends',
    async (_name, chunked, encode) => {
      const name = `big-${chunked ? 'uri' : 'b64'}.png`;
      worker.runner.pause();
      const body = Buffer.from(
        `{"input": {"workflow": ${JSON.stringify(loadWorkflow(name, 'in'))}, "images": [{"name": "${name}", "image": "${encode(image)}"}]}}`,
      );
      const submitted = await postRaw(`${worker.url}/run`, body, chunked);
      expect(submitted.status).toBe(200);
      // While it waits: the decoded image is a file on the data volume; the row holds its path, no base64.
      const spooled = list(worker, 'inputs');
      expect(spooled).toHaveLength(1);
      expect(fs.readFileSync(path.join(filesOf(worker), 'inputs', spooled[0]!)).equals(image)).toBe(true);
      const db = new Database(worker.dbPath, { readonly: true });
      const row = db.prepare('SELECT inputs FROM jobs WHERE id = ?').get(submitted.body.job_id) as { inputs: string };
      db.close();
      expect(JSON.parse(row.inputs)).toEqual([{ name, file: `inputs/${spooled[0]}`, size: image.length }]);

      worker.runner.resume();
      const done = await waitForStatus(worker.url, submitted.body.job_id);
      expect(done.status).toBe('completed');
      expect(fs.readFileSync(path.join(sim.dataDir, 'input', name)).equals(image)).toBe(true);
      await until(() => list(worker, 'inputs').length === 0, 5_000, 'the spool file to be deleted');
    },
  );

  test.each([
    [
      'not base64',
      (b: Buffer) => `${b.toString('base64').slice(0, 100_000)}*${b.toString('base64').slice(100_000)}`,
      'is not valid base64',
    ],
    [
      'a data URI not in base64',
      (b: Buffer) => `data:image/png,${b.toString('base64')}`,
      'data URI of image "x.png" is not base64-encoded',
    ],
  ])('a large image that is %s: the same 400 as a small one, and no file is left', async (_name, encode, message) => {
    const res = await postRaw(
      `${worker.url}/run`,
      Buffer.from(`{"workflow": ${JSON.stringify(saveWorkflow())}, "images": [{"name": "x.png", "image": "${encode(image)}"}]}`),
    );
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ field: 'images[0].image', message: expect.stringContaining(message) });
    await until(() => list(worker, 'inputs').length === 0, 5_000, 'the refused spool file to be deleted');
  });

  test('a raw control character inside a large image breaks JSON: 400 malformed JSON', async () => {
    const text = `{"workflow": {}, "images": [{"name": "x.png", "image": "${'A'.repeat(100_000)}\u0001AAA"}]}`;
    const res = await postRaw(`${worker.url}/run`, Buffer.from(text));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ field: 'body', message: expect.stringContaining('malformed JSON') });
    await until(() => list(worker, 'inputs').length === 0, 5_000, 'the spool file to be deleted');
  });

  test('a long URL stays a URL (checked as one), not base64', async () => {
    const url = `http://127.0.0.1:1/${'a'.repeat(100_000)}.png`;
    const res = await postRaw(
      `${worker.url}/run`,
      Buffer.from(JSON.stringify({ workflow: saveWorkflow(), images: [{ name: 'u.png', image: url }] })),
    );
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('images[0].image');
    expect(res.body.error.message).not.toContain('base64');
  });

  test('/generate/sync with a large image: the same spool, answered in the Result', async () => {
    const res = await postRaw(
      `${worker.url}/generate/sync`,
      Buffer.from(
        JSON.stringify({
          input: {
            workflow_json: loadWorkflow('s.png', 'sync_in'),
            images: [{ name: 's.png', image: image.toString('base64') }],
          },
        }),
      ),
    );
    expect(res.status).toBe(200);
    expect(res.body.output[0].filename).toMatch(/^sync_in_/);
    expect(fs.readFileSync(path.join(sim.dataDir, 'input', 's.png')).equals(image)).toBe(true);
    await until(() => list(worker, 'inputs').length === 0, 5_000, 'the spool file to be deleted');
  });
});

describe('outputs', () => {
  const simFile = (filename: string) => fs.readFileSync(path.join(sim.dataDir, 'output', filename));

  test('kept in the job folder beside the database and streamed byte for byte into /status, /result and /generate/sync', async () => {
    const workflow = saveWorkflow('kept', {
      '3': { class_type: 'EmptyImage', inputs: { width: 16, height: 16, batch_size: 2, color: 7 } },
      '4': { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'kept_b' } },
      '5': { class_type: 'PreviewAny', inputs: { source: 'a text output' } },
    });
    const sync = await postJson(`${worker.url}/generate/sync`, { input: { request_id: 'kept-1', workflow_json: workflow } });
    expect(sync.status).toBe(200);
    const files = sync.body.output.filter((o: { data?: string }) => o.data !== undefined);
    expect(files).toHaveLength(3);
    for (const o of files) expect(Buffer.from(o.data, 'base64').equals(simFile(o.filename))).toBe(true);
    expect(sync.body.output.find((o: { output_type: string }) => o.output_type === 'text').value).toBe('a text output');

    const status = await callJson('GET', `${worker.url}/status/kept-1`);
    const result = await callJson('GET', `${worker.url}/result/kept-1`);
    expect(status.body.result).toEqual(sync.body);
    expect(result.body).toEqual(sync.body);
    // The files, in the job's outputs folder; the database holds their paths only.
    const db = new Database(worker.dbPath, { readonly: true });
    const rows = db.prepare('SELECT path, size, bytes FROM job_files WHERE job_id = ? ORDER BY idx').all('kept-1') as Array<{
      path: string;
      size: number;
      bytes: Buffer | null;
    }>;
    db.close();
    expect(rows.map((r) => r.bytes)).toEqual([null, null, null]);
    rows.forEach((row, i) => {
      expect(row.path).toMatch(/^outputs\/\d+\/\d$/);
      expect(fs.readFileSync(path.join(filesOf(worker), row.path)).equals(simFile(files[i].filename))).toBe(true);
    });
  });

  test('the waiting caller is answered from the bytes kept while writing the file; /result reads the file', async () => {
    const outputsDir = path.join(filesOf(worker), 'outputs') + path.sep;
    const reads: string[] = [];
    const realReadFile = fs.readFileSync;
    const realReadStream = fs.createReadStream;
    const readFile = jest.spyOn(fs, 'readFileSync');
    const readStream = jest.spyOn(fs, 'createReadStream');
    const note = (file: unknown) => {
      if (typeof file === 'string' && file.startsWith(outputsDir)) reads.push(file);
    };
    readFile.mockImplementation(((file: fs.PathOrFileDescriptor, options?: unknown) => {
      note(file);
      return realReadFile(file, options as undefined);
    }) as typeof fs.readFileSync);
    readStream.mockImplementation(((file: fs.PathLike, options?: unknown) => {
      note(file);
      return realReadStream(file, options as undefined);
    }) as typeof fs.createReadStream);
    try {
      const sync = await postJson(`${worker.url}/generate/sync`, {
        input: { request_id: 'held-1', workflow_json: saveWorkflow('held') },
      });
      expect(sync.status).toBe(200);
      const out = sync.body.output[0];
      expect(Buffer.from(out.data, 'base64').equals(simFile(out.filename))).toBe(true);
      expect(reads).toEqual([]);
      // The file is the record: what /result answers from, as after a restart.
      const result = await callJson('GET', `${worker.url}/result/held-1`);
      expect(result.body).toEqual(sync.body);
      expect(reads).toHaveLength(1);
    } finally {
      readFile.mockRestore();
      readStream.mockRestore();
    }
  });

  test('HEAD /status gives the length of the streamed answer and no body', async () => {
    const res = await postJson(`${worker.url}/generate/sync`, {
      input: { request_id: 'head-1', workflow_json: saveWorkflow('head') },
    });
    const get = await fetch(`${worker.url}/status/head-1`);
    const text = await get.text();
    const head = await fetch(`${worker.url}/status/head-1`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    expect(await head.text()).toBe('');
  });

  test('a failed job keeps no files; cleanup and admin delete remove the files with the job', async () => {
    const failed = await postJson(`${worker.url}/generate/sync`, {
      input: { workflow_json: saveWorkflow('fails', { '9': { class_type: 'Nope', inputs: {} } }) },
    });
    expect(failed.status).toBe(400);
    const before = new Set(list(worker, 'outputs'));
    const ids = ['del-1', 'del-2'];
    for (const id of ids)
      expect(
        (await postJson(`${worker.url}/generate/sync`, { input: { request_id: id, workflow_json: saveWorkflow(id) } })).status,
      ).toBe(200);
    const added = list(worker, 'outputs').filter((d) => !before.has(d));
    expect(added).toHaveLength(2);

    expect((await callJson('DELETE', `${worker.url}/admin/job/del-1`)).status).toBe(200);
    await until(
      () => list(worker, 'outputs').filter((d) => !before.has(d)).length === 1,
      5_000,
      'admin delete to remove the files',
    );
    expect((await postJson(`${worker.url}/admin/cleanup?max_age_hours=0`, {})).status).toBe(200);
    await until(() => list(worker, 'outputs').length === 0, 5_000, 'cleanup to remove the files');
  });
});

test('the upkeep deletes files no job refers to (a crash between writing and recording them)', async () => {
  const orphanOutputs = path.join(filesOf(worker), 'outputs', '987654');
  fs.mkdirSync(orphanOutputs);
  fs.writeFileSync(path.join(orphanOutputs, '0'), 'left by a crash');
  const orphanInput = path.join(filesOf(worker), 'inputs', 'left-by-a-crash');
  fs.writeFileSync(orphanInput, 'x');
  const old = Date.now() / 1000 - 3600;
  fs.utimesSync(orphanInput, old, old);
  await worker.upkeep.pass();
  await until(() => !fs.existsSync(orphanOutputs) && !fs.existsSync(orphanInput), 5_000, 'the sweep');
});

test('a restarted worker serves a completed job byte for byte from the files beside its database', async () => {
  const dbPath = path.join(tempDir('restart-'), 'jobs.db');
  const first = await startTestWorker(sim.url, { SQLITE_DB_PATH: dbPath });
  let answer: any;
  try {
    answer = (
      await postJson(`${first.url}/generate/sync`, {
        input: {
          request_id: 'restart-1',
          workflow_json: loadWorkflow('r.png', 'restart'),
          images: [{ name: 'r.png', image: (await paddedPng(2_000)).toString('base64') }],
        },
      })
    ).body;
  } finally {
    await first.stop();
  }
  expect(answer.status).toBe('completed');
  const second = await startTestWorker(sim.url, { SQLITE_DB_PATH: dbPath });
  try {
    const result = await callJson('GET', `${second.url}/result/restart-1`);
    const status = await callJson('GET', `${second.url}/status/restart-1`);
    expect(result.body).toEqual(answer);
    expect(status.body.result).toEqual(answer);
    const data = Buffer.from(result.body.output[0].data, 'base64');
    expect(data.subarray(0, 8)).toEqual(PNG_MAGIC);
    expect(data.equals(fs.readFileSync(path.join(sim.dataDir, 'output', answer.output[0].filename)))).toBe(true);
  } finally {
    await second.stop();
  }
});
