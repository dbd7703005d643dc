// The serverless job loop against a fake RunPod control plane (a real HTTP server) and the
// ComfyUI simulator, the worker in this process.
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { startFakeRunpod, type FakeRunpod } from '../support/fake-runpod';
import { serve } from '../support/http-server';
import { PNG_MAGIC, saveWorkflow, slowWorkflow } from '../support/workflows';
import { until, type TestWorker } from '../support/worker';
import { INPUT_DATA_URI, INPUT_PNG, loadImageWorkflow, simFile, startRunpodWorker } from './support';

let sim: Simulator;
let fake: FakeRunpod;
let worker: TestWorker | undefined;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: { '*': 1 } });
  fake = await startFakeRunpod();
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await fake.close();
  await sim.close();
});

describe('a job taken from RunPod', () => {
  test('with a data-URI image: taken once ComfyUI is ready, run on the simulator, posted with the right body and headers', async () => {
    worker = await startRunpodWorker(sim.url, fake);
    fake.enqueue({
      id: 'job-1',
      input: { workflow: loadImageWorkflow('input.png'), images: [{ name: 'input.png', image: INPUT_DATA_URI }] },
    });
    const result = await fake.resultFor('job-1');

    // The job-take long-poll: worker id filled in, the template's query kept, job_in_progress added.
    const take = fake.takes()[0]!;
    expect(take.path).toBe(`/v2/${fake.endpoint}/job-take/${fake.podId}`);
    expect(take.query.get('gpu')).toBe('NVIDIA SIM');
    expect(take.query.get('job_in_progress')).toBe('0');

    // The result: job-done/<pod>/<job id>, isStream=false, the SDK's headers.
    expect(result.method).toBe('POST');
    expect(result.path).toBe(`/v2/${fake.endpoint}/job-done/${fake.podId}/job-1`);
    expect(Object.fromEntries(result.query)).toEqual({ gpu: 'NVIDIA SIM', isStream: 'false' });
    expect(result.headers).toMatchObject({
      authorization: fake.apiKey,
      'content-type': 'application/x-www-form-urlencoded',
      charset: 'utf-8',
      'x-request-id': 'job-1',
    });
    expect(Object.keys(result.body)).toEqual(['output']);
    const [image, ...others] = result.body.output.images;
    expect(others).toEqual([]);
    expect(image).toMatchObject({
      filename: expect.stringMatching(/^rp_[0-9a-f]{8}_00001_\.png$/),
      type: 'base64',
      node_id: '3',
    });
    const bytes = Buffer.from(image.data, 'base64');
    expect(bytes.subarray(0, 8)).toEqual(PNG_MAGIC);
    expect(bytes).toEqual(simFile(sim.dataDir, 'output', '', image.filename));
    // The image ComfyUI received is the data URI's bytes.
    expect(fs.readFileSync(path.join(sim.dataDir, 'input', 'input.png'))).toEqual(INPUT_PNG);
    // Every call carried the key.
    expect(fake.hits.every((h) => h.headers.authorization === fake.apiKey)).toBe(true);
    expect(fake.hits.filter((h) => h.answered === 401)).toEqual([]);
  });

  test.each([
    ['no workflow', { images: [] }, { error: "Missing 'workflow' parameter" }],
    ['no input', undefined, { error: 'Please provide input' }],
    ['input that is not JSON', '{not json', { error: 'Invalid JSON format in input' }],
    [
      'images of the wrong shape',
      { workflow: saveWorkflow(), images: [{ name: 'a.png' }] },
      {
        error: "'images' must be a list of objects with 'name' and 'image' keys",
      },
    ],
    [
      'an image that is not base64',
      { workflow: saveWorkflow(), images: [{ name: 'a.png', image: 'data:image/png;base64,@@@' }] },
      {
        error: 'Failed to upload one or more input images',
        output: { details: [expect.stringMatching(/^Error decoding base64 for a\.png: /)] },
      },
    ],
  ])('%s: posted as worker-comfyui reports it', async (_name, input, expected) => {
    worker = await startRunpodWorker(sim.url, fake);
    fake.enqueue(input === undefined ? { id: 'bad' } : { id: 'bad', input });
    const result = await fake.resultFor('bad');
    expect(result.body).toEqual(expected);
    expect(sim.prompts).toHaveLength(0);
  });

  test('an image given as a URL is fetched (private addresses only when allowed)', async () => {
    const host = await serve((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(INPUT_PNG));
    try {
      worker = await startRunpodWorker(sim.url, fake);
      const input = { workflow: loadImageWorkflow('remote.png'), images: [{ name: 'remote.png', image: `${host.url}/x.png` }] };
      fake.enqueue({ id: 'private', input });
      const refused = await fake.resultFor('private');
      expect(refused.body).toEqual({
        error: 'Failed to upload one or more input images',
        output: { details: [expect.stringMatching(/^Error uploading images\[0\]: .*private/)] },
      });
      await worker.stop();
      worker = await startRunpodWorker(sim.url, fake, { ALLOW_PRIVATE_URLS: 'true' });
      fake.enqueue({ id: 'fetched', input });
      const result = await fake.resultFor('fetched');
      expect(result.body.output.images).toHaveLength(1);
      expect(fs.readFileSync(path.join(sim.dataDir, 'input', 'remote.png'))).toEqual(INPUT_PNG);
    } finally {
      await host.close();
    }
  });

  test('an input sent as JSON text is parsed', async () => {
    worker = await startRunpodWorker(sim.url, fake);
    fake.enqueue({ id: 'text', input: JSON.stringify({ workflow: saveWorkflow('txt') }) });
    const result = await fake.resultFor('text');
    expect(result.body.output.images[0].filename).toMatch(/^txt_/);
  });

  test("ComfyUI's 400 and a node that raises are posted with worker-comfyui's strings", async () => {
    worker = await startRunpodWorker(sim.url, fake);
    // Its only output depends on the invalid node, so ComfyUI refuses the whole prompt.
    const bad = {
      '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 1, color: 0 } },
      '3': {
        class_type: 'ImageScale',
        inputs: { image: ['1', 0], upscale_method: 'bogus', width: 8, height: 8, crop: 'disabled' },
      },
      '4': { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'v' } },
    };
    fake.enqueue({ id: 'invalid', input: { workflow: bad } });
    const invalid = await fake.resultFor('invalid');
    expect(invalid.body.error).toBe(
      "Workflow validation failed:\n• Node 3 (ImageScale): Value not in list: upscale_method: 'bogus' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']",
    );
    expect(invalid.body.output.details.node_errors['3'].class_type).toBe('ImageScale');

    // SaveImage outside the output folder raises at run time (the recorded execution error).
    fake.enqueue({ id: 'raises', input: { workflow: saveWorkflow('../escape') } });
    const raised = await fake.resultFor('raises');
    expect(raised.body.error).toBe('Job processing failed');
    expect(raised.body.output.details).toEqual([
      expect.stringMatching(
        /^Workflow execution error: Node Type: SaveImage, Node ID: 2, Message: \*\*\*\* ERROR: Saving image outside/,
      ),
    ]);
  });

  test('no outputs at all: success_no_images', async () => {
    worker = await startRunpodWorker(sim.url, fake);
    const preview = {
      '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 1, color: 0 } },
      '2': { class_type: 'PreviewImage', inputs: { images: ['1', 0] } },
    };
    fake.enqueue({ id: 'temp-only', input: { workflow: preview } });
    const result = await fake.resultFor('temp-only');
    expect(result.body).toEqual({ output: { status: 'success_no_images', images: [] } });
  });
});

describe('the loop', () => {
  test('progress is posted as IN_PROGRESS while a slow job runs, never after its result', async () => {
    sim.setNodeDelay({ ImageScale: 600, '*': 1 });
    worker = await startRunpodWorker(sim.url, fake, { RUNPOD_PROGRESS_INTERVAL_MS: '0' });
    fake.enqueue({ id: 'slow', input: { workflow: slowWorkflow('slow') } });
    const result = await fake.resultFor('slow');
    const updates = fake.progress('slow');
    expect(updates.length).toBeGreaterThanOrEqual(2);
    for (const update of updates) {
      expect(update.body).toEqual({
        status: 'IN_PROGRESS',
        output: expect.objectContaining({ percentage: expect.any(Number), total_nodes: 3, completed_nodes: expect.any(Number) }),
      });
      expect(update.path).toBe(result.path);
      expect(update.headers['x-request-id']).toBe('slow');
    }
    // ImageScale (node 2) was reported as the node running.
    expect(updates.some((u) => u.body.output.current_node === '2')).toBe(true);
    const percentages = updates.map((u) => u.body.output.percentage as number);
    expect([...percentages].sort((a, b) => a - b)).toEqual(percentages);
    expect(fake.hits.indexOf(updates[updates.length - 1]!)).toBeLessThan(fake.hits.indexOf(result));
  });

  test('progress is throttled to one update per RUNPOD_PROGRESS_INTERVAL_MS', async () => {
    sim.setNodeDelay({ '*': 150 });
    worker = await startRunpodWorker(sim.url, fake, { RUNPOD_PROGRESS_INTERVAL_MS: '100000' });
    fake.enqueue({ id: 'throttled', input: { workflow: slowWorkflow('t') } });
    await fake.resultFor('throttled');
    // Several progress events (executing × 3, executed ...) in well under 100 s: one update.
    expect(fake.progress('throttled')).toHaveLength(1);
  });

  test('heartbeats carry the job id while the job runs, and none after', async () => {
    sim.setNodeDelay({ ImageScale: 1_000, '*': 1 });
    worker = await startRunpodWorker(sim.url, fake, { RUNPOD_PING_INTERVAL: '100' });
    await fake.waitFor('a first heartbeat', () => fake.pings().length > 0);
    fake.enqueue({ id: 'beating', input: { workflow: slowWorkflow('b') } });
    const result = await fake.resultFor('beating');
    const during = fake.pings().filter((p) => p.query.get('job_id') === 'beating');
    expect(during.length).toBeGreaterThanOrEqual(3);
    for (const ping of fake.pings()) {
      expect(ping.path).toBe(`/v2/${fake.endpoint}/ping/${fake.podId}`);
      expect(ping.query.get('gpu')).toBe('NVIDIA SIM');
      expect(ping.query.get('runpod_version')).toMatch(/^\d+\.\d+\.\d+$/);
      expect(ping.headers.authorization).toBe(fake.apiKey);
    }
    const count = fake.pings().length;
    await fake.waitFor('two more heartbeats', () => fake.pings().length >= count + 2);
    const after = fake.pings().filter((p) => p.at > result.at + 50);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((p) => !p.query.has('job_id'))).toBe(true);
  });

  test('204 and 400 mean "no job, ask again"; another error is logged and the loop goes on; 429 backs off 5 s', async () => {
    fake.scriptTake(204, 400, 500, { status: 200, body: 'not json' }, 429);
    worker = await startRunpodWorker(sim.url, fake);
    fake.enqueue({ id: 'after', input: { workflow: saveWorkflow('after') } });
    await fake.resultFor('after', 20_000);
    const takes = fake.takes();
    expect(takes.slice(0, 6).map((t) => t.answered)).toEqual([204, 400, 500, 200, 429, 200]);
    // After the 429 the worker waited (the SDK's 5 s) before asking again.
    expect(takes[5]!.at - takes[4]!.at).toBeGreaterThanOrEqual(4_900);
    expect(fake.results('after')).toHaveLength(1);
  });

  test('a result post that fails twice lands on the third attempt, with the same body', async () => {
    worker = await startRunpodWorker(sim.url, fake);
    fake.failResults(2, 503);
    fake.enqueue({ id: 'retried', input: { workflow: saveWorkflow('r') } });
    const landed = await fake.resultFor('retried');
    const posts = fake.results('retried');
    expect(posts.map((p) => p.answered)).toEqual([503, 503, 200]);
    expect(new Set(posts.map((p) => p.raw)).size).toBe(1);
    expect(landed.body.output.images).toHaveLength(1);
    // Nothing is owed any more: the taken-jobs folder empties once the answer is read.
    const dir = path.join(path.dirname(worker.dbPath), 'runpod-taken');
    await until(() => fs.readdirSync(dir).length === 0, 5_000, 'the taken-jobs entry to go');
  });

  test('a result that cannot be posted is kept, and posted by the next start (without running the job again)', async () => {
    worker = await startRunpodWorker(sim.url, fake, { RUNPOD_RESULT_ATTEMPTS: '2' });
    const dbPath = worker.dbPath;
    fake.failResults(2, 502);
    fake.enqueue({ id: 'undelivered', input: { workflow: saveWorkflow('u') } });
    await fake.waitFor('two refused posts', () => fake.results('undelivered').length === 2);
    await worker.stop();
    const dir = path.join(path.dirname(dbPath), 'runpod-taken');
    expect(fs.readdirSync(dir)).toEqual(['undelivered.json']);

    worker = await startRunpodWorker(sim.url, fake, { SQLITE_DB_PATH: dbPath });
    const landed = await fake.resultFor('undelivered');
    expect(landed.raw).toBe(fake.results('undelivered')[0]!.raw);
    expect(sim.prompts).toHaveLength(1);
    await until(() => fs.readdirSync(dir).length === 0, 5_000, 'the taken-jobs entry to go');
  });

  test('REFRESH_WORKER=true: the result carries stopPod and no further job is taken', async () => {
    worker = await startRunpodWorker(sim.url, fake, { REFRESH_WORKER: 'true' });
    fake.enqueue(
      { id: 'first', input: { workflow: saveWorkflow('one') } },
      { id: 'second', input: { workflow: saveWorkflow('two') } },
    );
    const result = await fake.resultFor('first');
    expect(result.body.stopPod).toBe(true);
    expect(result.body.output.images).toHaveLength(1);
    const takes = fake.takes().length;
    // Long enough for several more long-polls if the loop went on (each is held 300 ms).
    await new Promise((r) => setTimeout(r, 1_500));
    expect(fake.takes()).toHaveLength(takes);
    expect(fake.results('second')).toEqual([]);
    // The heartbeat goes on: the worker is alive until RunPod stops it.
    const pings = fake.pings().length;
    await fake.waitFor('a heartbeat after the refresh', () => fake.pings().length > pings);
  });

  test('job-stop interrupts the running prompt (by its id) and the job is posted as stopped', async () => {
    sim.setNodeDelay({ ImageScale: 1_500, '*': 1 });
    worker = await startRunpodWorker(sim.url, fake);
    fake.enqueue({ id: 'stopped', input: { workflow: slowWorkflow('s') } });
    await fake.waitFor('the prompt to run', () => sim.prompts.length === 1);
    await fake.waitFor('a job-stop poll', () => fake.hits.some((h) => h.kind === 'stop'));
    fake.stopJob('stopped');
    const result = await fake.resultFor('stopped');
    expect(result.body).toEqual({ error: "Job stopped at RunPod's request (job-stop)" });
    expect((await worker.queue.get('stopped'))?.status).toBe('cancelled');
    // ComfyUI ends the prompt as interrupted (at the end of the running node).
    const promptId = sim.prompts[0]!.prompt_id;
    let last: string | undefined;
    await until(
      async () => {
        const history = (await (await fetch(`${sim.url}/history/${promptId}`)).json()) as Record<string, any>;
        const messages: Array<[string]> = history[promptId]?.status?.messages ?? [];
        last = messages[messages.length - 1]?.[0];
        return last !== undefined;
      },
      15_000,
      'the prompt to end',
    );
    expect(last).toBe('execution_interrupted');
  });

  test('ComfyUI still starting when the worker starts: nothing is taken until it answers, then the first job succeeds', async () => {
    await sim.crash();
    worker = await startRunpodWorker(sim.url, fake, { COMFY_READY_TIMEOUT_S: '60' }, { ready: false });
    fake.enqueue({ id: 'cold', input: { workflow: saveWorkflow('cold') } });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(fake.takes()).toEqual([]);
    await sim.restart();
    const result = await fake.resultFor('cold', 20_000);
    expect(result.body.output.images[0].filename).toMatch(/^cold_/);
    expect(fake.takes()[0]!.at).toBeGreaterThanOrEqual(sim.requests.find((r) => r.path === '/system_stats')!.at);
  });
});
