// The standalone HTTP API against a real SQLite file and the simulator: every route, every status
// transition, the three /run body forms, cancel, and the async api-wrapper routes.
import Database from 'better-sqlite3';
import { startSimulator, type Simulator } from '../../simulator';
import { PNG_MAGIC, saveWorkflow } from '../support/workflows';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { slowWorkflow, submittedPrefixes, waitForStatus } from './support';

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
afterEach(async () => {
  worker.runner.resume();
  sim.setNodeDelay(2);
});

const run = (body: unknown) => postJson(`${worker.url}/run`, body);
const status = (id: string) => callJson('GET', `${worker.url}/status/${id}`);

describe('POST /run and GET /status', () => {
  test('the seed form: {workflow, images} at the top level → worker-comfyui result', async () => {
    const submitted = await run({ workflow: saveWorkflow('seed'), images: [] });
    expect(submitted.status).toBe(200);
    expect(submitted.body).toEqual({ job_id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'pending' });

    const done = await waitForStatus(worker.url, submitted.body.job_id);
    expect(Object.keys(done).sort()).toEqual(
      ['job_id', 'status', 'result', 'error', 'error_code', 'created_at', 'started_at', 'completed_at'].sort(),
    );
    expect(done).toMatchObject({ job_id: submitted.body.job_id, status: 'completed', error: null, error_code: null });
    expect(done.result.images).toHaveLength(1);
    const image = done.result.images[0];
    expect(image).toMatchObject({
      filename: expect.stringMatching(/^seed_[0-9a-f]{8}_00001_\.png$/),
      type: 'base64',
      node_id: '2',
    });
    expect(Buffer.from(image.data, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
    // Epoch seconds, in order.
    const nowS = Date.now() / 1000;
    expect(done.created_at).toBeGreaterThan(nowS - 60);
    expect(done.created_at).toBeLessThanOrEqual(done.started_at);
    expect(done.started_at).toBeLessThanOrEqual(done.completed_at);
    expect(done.completed_at).toBeLessThanOrEqual(nowS + 1);
  });

  test('the worker-comfyui form {input: {workflow, images}} with a base64 input image', async () => {
    const png = await waitForStatus(worker.url, (await run({ workflow: saveWorkflow('src') })).body.job_id);
    const workflow = {
      '1': { class_type: 'LoadImage', inputs: { image: 'in.png' } },
      '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'rc' } },
    };
    const submitted = await run({ input: { workflow, images: [{ name: 'in.png', image: png.result.images[0].data }] } });
    expect(submitted.status).toBe(200);
    const done = await waitForStatus(worker.url, submitted.body.job_id);
    expect(done.status).toBe('completed');
    expect(done.result.images[0].type).toBe('base64');
    expect(sim.requests.some((r) => r.method === 'POST' && r.path === '/upload/image')).toBe(true);
  });

  test('the api-wrapper form (a modifier) → the Result envelope in /status and /result', async () => {
    const submitted = await run({ input: { request_id: 'wrapped-1', modifier: 'Text2Image', modifications: { steps: 2 } } });
    expect(submitted.body).toEqual({ job_id: 'wrapped-1', status: 'pending' });
    const done = await waitForStatus(worker.url, 'wrapped-1');
    expect(done.status).toBe('completed');
    expect(done.result).toMatchObject({ id: 'wrapped-1', status: 'completed', message: 'Processing complete.' });
    expect(done.result.output[0]).toMatchObject({ output_type: 'images', mimetype: 'image/png' });
    const result = await callJson('GET', `${worker.url}/result/wrapped-1`);
    expect(result.status).toBe(200);
    expect(result.body.output[0].data).toBe(done.result.output[0].data);
  });

  test('every output kind is returned: text values beside images', async () => {
    const wf = saveWorkflow('kinds', { '3': { class_type: 'PreviewAny', inputs: { source: 'hello' } } });
    const done = await waitForStatus(worker.url, (await run({ workflow: wf })).body.job_id);
    expect(done.result.images).toHaveLength(1);
    expect(done.result.text).toEqual([{ node_id: '3', type: 'text', data: 'hello' }]);
  });

  test('no outputs at all: success_no_images', async () => {
    const wf = saveWorkflow('none', { '3': { class_type: 'PreviewAny', inputs: { source: 'x' } } });
    delete wf['2'];
    const done = await waitForStatus(worker.url, (await run({ workflow: wf })).body.job_id);
    expect(done.status).toBe('completed');
    expect(done.result).toMatchObject({ images: [], text: [{ data: 'x' }] });
  });

  test('pending (with queue position) → running (with progress) → completed', async () => {
    worker.runner.pause();
    sim.setNodeDelay({ ImageScale: 600, '*': 2 });
    const a = (await run({ workflow: slowWorkflow('order_a') })).body.job_id;
    const b = (await run({ workflow: saveWorkflow('order_b') })).body.job_id;
    const c = (await run({ workflow: saveWorkflow('order_c') })).body.job_id;
    const pending = await Promise.all([a, b, c].map((id) => status(id)));
    expect(pending.map((r) => [r.body.status, r.body.queue_position, r.body.started_at])).toEqual([
      ['pending', 0, null],
      ['pending', 1, null],
      ['pending', 2, null],
    ]);
    expect(pending[0]!.body.progress).toBeUndefined();

    const before = sim.prompts.length;
    worker.runner.resume();
    const running = await waitForStatus(worker.url, a, ['running']);
    expect(running.queue_position).toBeUndefined();
    expect(running.progress).toEqual(expect.objectContaining({ total_nodes: 3 }));
    expect(running.started_at).toBeGreaterThanOrEqual(running.created_at);
    // The job behind it is next in line: still pending, or already handed to ComfyUI to wait in
    // its queue behind a (running, nothing executed yet).
    const next = (await status(b)).body;
    if (next.status === 'pending') expect(next.queue_position).toBe(0);
    else expect([next.status, next.progress?.completed_nodes]).toEqual(['running', 0]);
    await until(async () => (await status(a)).body.progress?.completed_nodes >= 1, 5_000, 'progress');

    for (const id of [a, b, c]) expect((await waitForStatus(worker.url, id)).status).toBe('completed');
    const order = submittedPrefixes(sim.prompts.slice(before)).map((p) => p.replace(/_[0-9a-f]{8}$/, ''));
    expect(order).toEqual(['order_a', 'order_b', 'order_c']);
  });

  test('a rejected workflow is failed (never completed) with its error', async () => {
    const wf = saveWorkflow('bad', { '3': { class_type: 'NoSuchNode', inputs: {} } });
    const done = await waitForStatus(worker.url, (await run({ workflow: wf })).body.job_id);
    expect(done).toMatchObject({ status: 'failed', result: null, error_code: 'comfy_validation' });
    expect(typeof done.error).toBe('string');
    expect(done.error).toContain('NoSuchNode');
    expect(done.error_details).toHaveProperty('node_errors');
    expect(done.completed_at).toBeGreaterThanOrEqual(done.started_at);
  });

  test('/generate/sync and /run share one queue, in submission order', async () => {
    worker.runner.pause();
    const before = sim.prompts.length;
    const first = (await run({ workflow: saveWorkflow('shared_1') })).body.job_id;
    const sync = postJson(`${worker.url}/generate/sync`, { input: { workflow_json: saveWorkflow('shared_2') } });
    await until(async () => (await worker.store.counts()).pending === 2, 5_000, 'sync job queued');
    const third = (await run({ workflow: saveWorkflow('shared_3') })).body.job_id;
    worker.runner.resume();
    expect((await sync).status).toBe(200);
    await waitForStatus(worker.url, first);
    await waitForStatus(worker.url, third);
    const order = submittedPrefixes(sim.prompts.slice(before)).map((p) => p.replace(/_[0-9a-f]{8}$/, ''));
    expect(order).toEqual(['shared_1', 'shared_2', 'shared_3']);
  });
});

describe('cancel', () => {
  test('a pending job is cancelled at once and never reaches ComfyUI', async () => {
    worker.runner.pause();
    const id = (await run({ workflow: saveWorkflow('cancel_pending') })).body.job_id;
    const res = await postJson(`${worker.url}/cancel/${id}`, {});
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message: `Successfully cancelled request ${id}`, status: 'cancelled' });
    worker.runner.resume();
    const final = (await status(id)).body;
    expect(final).toMatchObject({ status: 'cancelled', error: 'Request cancelled by client', error_code: 'cancelled' });
    expect(final.started_at).toBeNull();
    await waitForStatus(worker.url, (await run({ workflow: saveWorkflow('after_cancel') })).body.job_id);
    expect(submittedPrefixes(sim.prompts).some((p) => p.startsWith('cancel_pending'))).toBe(false);
  });

  test('a running job is interrupted by its prompt id and ends cancelled', async () => {
    sim.setNodeDelay({ ImageScale: 1_500, '*': 2 });
    const id = (await run({ workflow: slowWorkflow('cancel_running') })).body.job_id;
    await waitForStatus(worker.url, id, ['running']);
    await until(() => submittedPrefixes(sim.prompts).some((p) => p.startsWith('cancel_running')), 5_000, 'submitted');
    // Had the cancel waited for the prompt to finish, the job would be completed, not cancelled.
    const res = await postJson(`${worker.url}/cancel/${id}`, {});
    expect(res.body).toEqual({ message: `Successfully cancelled request ${id}`, status: 'cancelled' });
    expect((await status(id)).body.status).toBe('cancelled');
    const prompt = sim.prompts.find((p) => JSON.stringify(p.body).includes('cancel_running'));
    expect(sim.requests.some((r) => r.method === 'POST' && r.path === '/interrupt')).toBe(true);
    expect(prompt).toBeDefined();
    // By its prompt id: taken out of the queue and interrupted, and no other (or bare) interrupt.
    const bodies = (path: string) => sim.requests.filter((r) => r.method === 'POST' && r.path === path).map((r) => r.body);
    expect(bodies('/interrupt')).toEqual([{ prompt_id: prompt!.prompt_id }]);
    expect(bodies('/queue')).toEqual([{ delete: [prompt!.prompt_id] }]);
  });

  test('an ended job: "already completed"; an unknown one: 404', async () => {
    const id = (await run({ workflow: saveWorkflow('cancel_done') })).body.job_id;
    await waitForStatus(worker.url, id);
    const res = await postJson(`${worker.url}/cancel/${id}`, {});
    expect(res.body).toEqual({ message: `Request ${id} is already completed`, status: 'completed' });
    const unknown = await postJson(`${worker.url}/cancel/nope`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: 'Request nope not found' });
  });
});

describe('the async api-wrapper routes', () => {
  test('POST /generate → 202 pending Result; GET /result → 200 completed', async () => {
    const res = await postJson(`${worker.url}/generate`, { input: { request_id: 'gen-1', workflow_json: saveWorkflow('gen') } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ id: 'gen-1', status: 'pending', message: 'Request accepted', output: [] });
    expect(res.body.timings.queued_at_ms).toBeGreaterThan(Date.now() - 60_000);
    await until(async () => (await callJson('GET', `${worker.url}/result/gen-1`)).body.status === 'completed', 10_000, 'done');
    const result = await callJson('GET', `${worker.url}/result/gen-1`);
    expect(result.status).toBe(200);
    expect(result.body.output[0].data.length).toBeGreaterThan(10);
    expect((await status('gen-1')).body.result.id).toBe('gen-1');
  });

  test('GET /result: a failed job answers with its error status; an unknown id is a 404 Result', async () => {
    await postJson(`${worker.url}/generate`, {
      input: { request_id: 'gen-bad', workflow_json: saveWorkflow('x', { '3': { class_type: 'Nope', inputs: {} } }) },
    });
    await waitForStatus(worker.url, 'gen-bad');
    const failed = await callJson('GET', `${worker.url}/result/gen-bad`);
    expect(failed.status).toBe(400);
    expect(failed.body).toMatchObject({ id: 'gen-bad', status: 'failed' });
    const unknown = await callJson('GET', `${worker.url}/result/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({
      id: 'nope',
      status: 'failed',
      message: 'Request ID not found',
      output: [],
      timings: {},
      comfyui_response: {},
    });
  });

  test('GET /result while pending and running answers 200', async () => {
    worker.runner.pause();
    sim.setNodeDelay({ ImageScale: 500, '*': 2 });
    await postJson(`${worker.url}/generate`, { input: { request_id: 'gen-slow', workflow_json: slowWorkflow('gs') } });
    const pending = await callJson('GET', `${worker.url}/result/gen-slow`);
    expect([pending.status, pending.body.status]).toEqual([200, 'pending']);
    worker.runner.resume();
    await waitForStatus(worker.url, 'gen-slow', ['running']);
    const running = await callJson('GET', `${worker.url}/result/gen-slow`);
    expect([running.status, running.body.status]).toEqual([200, 'generating']);
    await waitForStatus(worker.url, 'gen-slow');
  });

  test('GET /queue-info counts waiting and running jobs', async () => {
    worker.runner.pause();
    await run({ workflow: saveWorkflow('qi_1') });
    await run({ workflow: saveWorkflow('qi_2') });
    const info = await callJson('GET', `${worker.url}/queue-info`);
    expect(info.body).toEqual({ preprocess_queue_size: 2, generation_queue_size: 0, postprocess_queue_size: 0 });
    worker.runner.resume();
    await until(
      async () => (await callJson('GET', `${worker.url}/queue-info`)).body.preprocess_queue_size === 0,
      10_000,
      'drained',
    );
  });
});

describe('GET /stats and DELETE /admin/job', () => {
  test('/stats counts every status; include_recent lists the latest jobs with string errors', async () => {
    const failedId = (await run({ workflow: saveWorkflow('st', { '3': { class_type: 'Nope', inputs: {} } }) })).body.job_id;
    await waitForStatus(worker.url, failedId);
    const stats = await callJson('GET', `${worker.url}/stats`);
    expect(stats.status).toBe(200);
    const counts = await worker.store.counts();
    expect(stats.body).toEqual({
      total_jobs: Object.values(counts).reduce((a, b) => a + b, 0),
      pending_jobs: counts.pending,
      running_jobs: counts.running,
      completed_jobs: counts.completed,
      failed_jobs: counts.failed,
      cancelled_jobs: counts.cancelled,
    });
    expect(stats.body.failed_jobs).toBeGreaterThanOrEqual(1);

    const recent = await callJson('GET', `${worker.url}/stats?include_recent=true`);
    expect(recent.body.recent_jobs[0]).toEqual({
      id: failedId,
      status: 'failed',
      created_at: expect.any(Number),
      started_at: expect.any(Number),
      completed_at: expect.any(Number),
      error: expect.stringContaining('Nope'),
    });
    expect(recent.body.recent_jobs.length).toBeLessThanOrEqual(50);
    expect((await callJson('GET', `${worker.url}/stats?include_recent=0`)).body.recent_jobs).toBeUndefined();
  });

  test('DELETE /admin/job: ended jobs and their files go; pending and running are refused; unknown is 404', async () => {
    const id = (await run({ workflow: saveWorkflow('del') })).body.job_id;
    await waitForStatus(worker.url, id);
    const res = await callJson('DELETE', `${worker.url}/admin/job/${id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message: `Job ${id} deleted successfully` });
    expect((await status(id)).status).toBe(404);
    const db = new Database(worker.dbPath, { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM job_files WHERE job_id = ?').get(id)).toEqual({ n: 0 });
    } finally {
      db.close();
    }

    worker.runner.pause();
    const pending = (await run({ workflow: saveWorkflow('del_pending') })).body.job_id;
    const refused = await callJson('DELETE', `${worker.url}/admin/job/${pending}`);
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain('Can only delete completed, failed or cancelled jobs');
    expect(refused.body.error.message).toContain('pending');

    sim.setNodeDelay({ ImageScale: 800, '*': 2 });
    worker.runner.resume();
    const slow = (await run({ workflow: slowWorkflow('del_running') })).body.job_id;
    await waitForStatus(worker.url, slow, ['running']);
    const running = await callJson('DELETE', `${worker.url}/admin/job/${slow}`);
    expect(running.status).toBe(400);
    expect(running.body.error.message).toContain('running');
    expect((await waitForStatus(worker.url, slow)).status).toBe('completed');

    const unknown = await callJson('DELETE', `${worker.url}/admin/job/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
  });
});

describe('bad input', () => {
  test.each([
    ['not JSON', 'body', '{"workflow": '],
    ['not an object', 'body', '[1, 2]'],
    ['no workflow', 'workflow', {}],
    ['workflow not an object', 'workflow', { workflow: 'x' }],
    ['a UI workflow', 'workflow', { workflow: { nodes: [], links: [] } }],
    ['images not a list', 'images', { workflow: saveWorkflow(), images: 'a.png' }],
    ['an image without a name', 'images[0]', { workflow: saveWorkflow(), images: [{ image: 'AAAA' }] }],
    ['an image that is not base64', 'images[0].image', { workflow: saveWorkflow(), images: [{ name: 'a.png', image: '!!' }] }],
    ['workflow at the top and input', 'body', { workflow: saveWorkflow(), input: {} }],
    ['input without workflow', 'input.workflow', { input: { images: [] } }],
    ['input as text that is not JSON', 'input', { input: 'nope' }],
    ['input null', 'input', { input: null }],
    [
      'a wrapper input with both workflow_json and modifier',
      'input.workflow_json',
      { input: { workflow_json: saveWorkflow(), modifier: 'Text2Image' } },
    ],
    ['a non-string Comfy.org key', 'input.comfy_org_api_key', { input: { workflow: saveWorkflow(), comfy_org_api_key: 5 } }],
  ])('POST /run: %s → 400 naming %s', async (_name, field, body) => {
    const res = await postJson(`${worker.url}/run`, body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_request', status: 400, field });
    expect(res.body.error.message).toMatch(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}`));
  });

  test('worker-comfyui messages are kept', async () => {
    expect((await run({ input: {} })).body.error.message).toBe("input.workflow: Missing 'workflow' parameter");
    expect((await run({ input: { workflow: saveWorkflow(), images: [1] } })).body.error.message).toBe(
      "input.images[0]: 'images' must be a list of objects with 'name' and 'image' keys",
    );
    expect((await run({ input: 'nope' })).body.error.message).toBe('input: Invalid JSON format in input');
  });

  test('input as a JSON text is accepted (worker-comfyui does)', async () => {
    const res = await run({ input: JSON.stringify({ workflow: saveWorkflow('as_text') }) });
    expect(res.status).toBe(200);
    expect((await waitForStatus(worker.url, res.body.job_id)).status).toBe('completed');
  });

  test('unknown job id: 404 on /status', async () => {
    const res = await status('no-such-job');
    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'not_found', message: 'Job no-such-job not found' });
  });

  test('bad query parameters: 400 naming them', async () => {
    const stats = await callJson('GET', `${worker.url}/stats?include_recent=maybe`);
    expect(stats.status).toBe(400);
    expect(stats.body.error.field).toBe('include_recent');
    const cleanup = await postJson(`${worker.url}/admin/cleanup?max_age_hours=-1`, {});
    expect(cleanup.status).toBe(400);
    expect(cleanup.body.error.field).toBe('max_age_hours');
    const reset = await postJson(`${worker.url}/admin/reset-stuck?max_running_time_hours=soon`, {});
    expect(reset.status).toBe(400);
    expect(reset.body.error.field).toBe('max_running_time_hours');
  });

  test('a full queue: 503 with Retry-After', async () => {
    const small = await startTestWorker(sim.url, { MAX_QUEUE_SIZE: '2' });
    try {
      small.runner.pause();
      expect((await postJson(`${small.url}/run`, { workflow: saveWorkflow() })).status).toBe(200);
      expect((await postJson(`${small.url}/run`, { workflow: saveWorkflow() })).status).toBe(200);
      const full = await postJson(`${small.url}/run`, { workflow: saveWorkflow() });
      expect(full.status).toBe(503);
      expect(full.headers.get('retry-after')).toBe('5');
      expect(full.body.error.code).toBe('queue_full');
      const generate = await postJson(`${small.url}/generate`, { input: { workflow_json: saveWorkflow() } });
      expect(generate.status).toBe(503);
    } finally {
      await small.stop();
    }
  });
});

test('GET /health: job counts and the database path; 503 when the database is unusable', async () => {
  const own = await startTestWorker(sim.url);
  try {
    const healthy = await callJson('GET', `${own.url}/health`);
    expect(healthy.status).toBe(200);
    expect(healthy.body).toMatchObject({
      status: 'healthy',
      database_path: own.dbPath,
      job_stats: { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0, total: 0 },
    });
    own.runner.pause();
    await own.store.close();
    const broken = await callJson('GET', `${own.url}/health`);
    expect(broken.status).toBe(503);
    expect(broken.body).toMatchObject({ status: 'unhealthy', job_stats: null });
    expect(broken.body.database_error).toEqual(expect.any(String));
  } finally {
    await own.stop();
  }
});
