// POST /generate/sync end to end: a real worker, a real HTTP client, the ComfyUI simulator.
import { startSimulator, type Simulator } from '../../simulator';
import { startTestWorker, getJson, postJson, type TestWorker } from '../support/worker';
import { trace } from '../support/traces';
import { PNG_MAGIC, saveWorkflow, successWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 2 });
  worker = await startTestWorker(sim.url);
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

const sync = (input: Record<string, unknown>, headers?: Record<string, string>) =>
  postJson(`${worker.url}/generate/sync`, { input }, { headers });

describe('POST /generate/sync: success', () => {
  test('runs the recorded success workflow and returns its output inline', async () => {
    const res = await sync({ request_id: 'success-1', workflow_json: successWorkflow() });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: 'success-1', status: 'completed', message: 'Processing complete.' });
    expect(res.body.output).toHaveLength(1);
    const [out] = res.body.output;
    expect(out).toMatchObject({ node_id: '4', output_type: 'images', type: 'output', subfolder: '', mimetype: 'image/png' });
    expect(out.filename).toMatch(/^trace_success_[0-9a-f]{8}_00001_\.png$/);
    const png = Buffer.from(out.data, 'base64');
    expect(png.subarray(0, 8).equals(PNG_MAGIC)).toBe(true);
    expect(png.readUInt32BE(16)).toBe(256); // ImageScale to 256 wide
    for (const key of ['queued_at_ms', 'preprocess_ms', 'generation_ms', 'postprocess_ms', 'completed_at_ms', 'total_ms']) {
      expect(typeof res.body.timings[key]).toBe('number');
    }
  });

  test('submits with a worker-minted lowercase uuid prompt_id and the worker client_id', async () => {
    await sync({ workflow_json: successWorkflow(1) });
    const last = sim.prompts[sim.prompts.length - 1]!;
    expect(last.prompt_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((last.body as { client_id: string }).client_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('an identical resubmission produces a fresh file, not the cached old one', async () => {
    const a = await sync({ workflow_json: successWorkflow(7) });
    const b = await sync({ workflow_json: successWorkflow(7) });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body.output).toHaveLength(1);
    expect(b.body.output[0].filename).not.toBe(a.body.output[0].filename);
  });

  test('the Comfy.org key goes into extra_data: the request key, else COMFY_ORG_API_KEY, else none', async () => {
    const lastExtraData = () => (sim.prompts[sim.prompts.length - 1]!.body as { extra_data: Record<string, unknown> }).extra_data;
    await sync({ workflow_json: saveWorkflow() });
    expect(lastExtraData()).not.toHaveProperty('api_key_comfy_org');
    const withEnvKey = await startTestWorker(sim.url, { COMFY_ORG_API_KEY: 'env-key' });
    try {
      const viaEnvWorker = (input: Record<string, unknown>) => postJson(`${withEnvKey.url}/generate/sync`, { input });
      await viaEnvWorker({ workflow_json: saveWorkflow(), api_key_comfy_org: 'req-key' });
      expect(lastExtraData().api_key_comfy_org).toBe('req-key');
      await viaEnvWorker({ workflow_json: saveWorkflow(), comfy_org_api_key: 'req-key-2' });
      expect(lastExtraData().api_key_comfy_org).toBe('req-key-2');
      await viaEnvWorker({ workflow_json: saveWorkflow() });
      expect(lastExtraData().api_key_comfy_org).toBe('env-key');
    } finally {
      await withEnvKey.stop();
    }
  });

  test('Text2Image modifier runs the SD1.5 graph', async () => {
    const res = await sync({
      modifier: 'Text2Image',
      modifications: { prompt: 'a cat', width: 64, height: 64, steps: 3, seed: 1 },
    });
    expect(res.status).toBe(200);
    expect(res.body.output[0]).toMatchObject({ node_id: '9', output_type: 'images' });
    expect(Buffer.from(res.body.output[0].data, 'base64').readUInt32BE(16)).toBe(64);
  });

  test('input image as base64 is uploaded and used by LoadImage', async () => {
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
      'base64',
    );
    const workflow = {
      '1': { class_type: 'LoadImage', inputs: { image: 'my-input.png' } },
      '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
      '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'loaded' } },
    };
    const res = await sync({
      workflow_json: workflow,
      images: [{ name: 'my-input.png', image: `data:image/png;base64,${png.toString('base64')}` }],
    });
    expect(res.status).toBe(200);
    expect(res.body.output[0].filename).toMatch(/^loaded_/);
    expect(sim.requests.some((r) => r.method === 'POST' && r.path === '/upload/image')).toBe(true);
  });

  test('temp outputs (PreviewImage) are skipped unless include_temp_outputs', async () => {
    const wf = saveWorkflow('withpreview', { '3': { class_type: 'PreviewImage', inputs: { images: ['1', 0] } } });
    const plain = await sync({ workflow_json: wf });
    expect(plain.body.output.map((o: { type: string }) => o.type)).toEqual(['output']);
    const withTemp = await sync({ workflow_json: wf, include_temp_outputs: true });
    expect(withTemp.body.output.map((o: { type: string }) => o.type).sort()).toEqual(['output', 'temp']);
  });

  test('subfolders in filename_prefix are kept', async () => {
    const res = await sync({ workflow_json: saveWorkflow('nested/dir/pic') });
    expect(res.status).toBe(200);
    expect(res.body.output[0]).toMatchObject({ subfolder: 'nested/dir' });
    expect(res.body.output[0].filename).toMatch(/^pic_[0-9a-f]{8}_00001_\.png$/);
  });

  test('text outputs come back as values', async () => {
    const wf = saveWorkflow('t', { '3': { class_type: 'PreviewAny', inputs: { source: 'hello' } } });
    const res = await sync({ workflow_json: wf });
    expect(res.status).toBe(200);
    expect(res.body.output).toContainEqual({ node_id: '3', output_type: 'text', value: 'hello' });
  });
});

test('the caller is answered before the row is written, and nothing asked after the answer sees the job running', async () => {
  const atAnswer: string[] = [];
  const onCompleting = (job: { id: string }) => {
    // The store's read happens now (the row as it is when waiting callers are answered).
    void worker.store.get(job.id).then((row) => atAnswer.push(row?.status ?? 'missing'));
  };
  worker.events.on('completing', onCompleting);
  try {
    const res = await sync({ request_id: 'answer-first-1', workflow_json: saveWorkflow() });
    expect(res.body).toMatchObject({ status: 'completed' });
    expect(atAnswer).toEqual(['running']);
    // Both the store and the routes have it completed by the time the answer is read.
    expect((await worker.queue.get('answer-first-1'))?.status).toBe('completed');
    expect((await getJson(`${worker.url}/result/answer-first-1`)).body).toMatchObject({ status: 'completed' });
  } finally {
    worker.events.off('completing', onCompleting);
  }
});

describe('POST /generate/sync: ComfyUI validation errors pass through as 400 with node ids', () => {
  type Case = { request_json?: { prompt?: Record<string, unknown> }; status: number; body: Record<string, any> };
  const cases = Object.entries(trace<Record<string, Case>>('prompt_invalid_responses.json')).filter(
    ([name, c]) => c.status === 400 && c.request_json?.prompt !== undefined && name !== 'no_output_node',
  );

  test.each(cases)('%s', async (_name, c) => {
    const res = await sync({ workflow_json: c.request_json!.prompt });
    expect(res.status).toBe(400);
    expect(res.body.status).toBe('failed');
    expect(res.body.error.code).toBe('comfy_validation');
    expect(res.body.error.details.error.type).toBe(c.body.error.type);
    expect(Object.keys(res.body.error.details.node_errors)).toEqual(Object.keys(c.body.node_errors));
    for (const [nodeId, entry] of Object.entries(c.body.node_errors as Record<string, { errors: Array<{ type: string }> }>)) {
      expect(res.body.error.details.node_errors[nodeId].errors.map((e: { type: string }) => e.type)).toEqual(
        entry.errors.map((e) => e.type),
      );
    }
  });

  test('no output node', async () => {
    const res = await sync({
      workflow_json: { '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: 0 } } },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details.error.type).toBe('prompt_no_outputs');
  });
});

describe('POST /generate/sync: runtime errors', () => {
  test.each([
    ['prompt_runtime_error_saveimage_request.json', 'SaveImage', 'Exception'],
    ['prompt_runtime_error_imageblend_request.json', 'ImageBlend', 'RuntimeError'],
  ])('%s → 500 naming node, type and exception', async (file, nodeType, exceptionType) => {
    const res = await sync({ workflow_json: trace<{ prompt: unknown }>(file).prompt });
    expect(res.status).toBe(500);
    expect(res.body.status).toBe('failed');
    expect(res.body.error).toMatchObject({
      code: 'execution_error',
      details: { node_id: '3', node_type: nodeType, exception_type: exceptionType },
    });
    expect(res.body.message).toContain(`Node 3 (${nodeType}) raised ${exceptionType}`);
  });
});

test('callers sharing a request_id: one leaving does not cancel the job for the other; an async job is never joined', async () => {
  sim.setNodeDelay(200);
  try {
    const leaving = new AbortController();
    // shared-1 holds the runner so that shared-2 is still pending when the second caller joins it.
    const holding = sync({ request_id: 'shared-1', workflow_json: saveWorkflow('shared') });
    const firstAborted = postJson(
      `${worker.url}/generate/sync`,
      { input: { request_id: 'shared-2', workflow_json: saveWorkflow('s2') } },
      { signal: leaving.signal },
    ).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const staying = sync({ request_id: 'shared-2', workflow_json: saveWorkflow('s2') });
    await new Promise((r) => setTimeout(r, 50));
    leaving.abort();
    await firstAborted;
    const kept = await staying;
    expect(kept.status).toBe(200);
    expect(kept.body).toMatchObject({ id: 'shared-2', status: 'completed' });
    // It joined the first caller's job rather than running a second one.
    expect(sim.prompts.filter((p) => JSON.stringify(p.body).includes('"s2_')).length).toBe(1);
    expect((await holding).status).toBe(200);

    const asyncJob = await postJson(`${worker.url}/generate`, {
      input: { request_id: 'shared-3', workflow_json: saveWorkflow('s3') },
    });
    expect(asyncJob.status).toBe(202);
    const joinAttempt = await sync({ request_id: 'shared-3', workflow_json: saveWorkflow('s3') });
    expect(joinAttempt.status).toBe(409);
  } finally {
    sim.setNodeDelay(2);
  }
});

describe('POST /generate/sync: bad input is a 4xx naming the problem', () => {
  test.each([
    ['both workflow_json and modifier', { workflow_json: saveWorkflow(), modifier: 'Text2Image' }, 'input.workflow_json'],
    ['neither', { request_id: 'x' }, 'input.workflow_json'],
    ['unknown modifier', { modifier: 'Upscale4x' }, 'input.modifier'],
    ['modifications without modifier', { workflow_json: saveWorkflow(), modifications: { seed: 1 } }, 'input.modifications'],
    ['non-object workflow', { workflow_json: [1, 2] }, 'input.workflow_json'],
    ['bad base64 image', { workflow_json: saveWorkflow(), images: [{ name: 'a.png', image: '***' }] }, 'input.images[0].image'],
    ['bad modification', { modifier: 'Text2Image', modifications: { steps: 'many' } }, 'input.modifications.steps'],
  ])('%s', async (_name, input, field) => {
    const before = sim.prompts.length;
    const res = await sync(input);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(res.body.error).toMatchObject({ code: 'invalid_request', status: 400, field });
    expect(sim.prompts.length).toBe(before);
  });

  test('malformed JSON', async () => {
    const res = await postJson(`${worker.url}/generate/sync`, '{"input": {');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_request', field: 'body' });
    expect(res.body.error.message).toContain('malformed JSON');
  });

  test('no input', async () => {
    const res = await postJson(`${worker.url}/generate/sync`, { workflow_json: {} });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ field: 'input', message: 'input: is required' });
  });

  test('private-address image URL', async () => {
    const res = await sync({ workflow_json: saveWorkflow(), images: [{ name: 'x.png', image: 'http://127.0.0.1:1/x.png' }] });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('input.images[0].image');
  });

  test('a reused request_id: an ended job is run again; a retry while it runs joins it; async is a 409', async () => {
    const first = await sync({ request_id: 'dup-1', workflow_json: saveWorkflow('dupa') });
    const again = await sync({ request_id: 'dup-1', workflow_json: saveWorkflow('dupb') });
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.body.output[0].filename).toMatch(/^dupb_/);

    sim.setNodeDelay(150);
    const before = sim.prompts.length;
    const [a, b] = await Promise.all([
      sync({ request_id: 'dup-2', workflow_json: saveWorkflow('dupc') }),
      new Promise((r) => setTimeout(r, 60)).then(() => sync({ request_id: 'dup-2', workflow_json: saveWorkflow('dupc') })),
    ]);
    const busy = sync({ request_id: 'dup-3', workflow_json: saveWorkflow('dupd') });
    await new Promise((r) => setTimeout(r, 60));
    const asyncDuplicate = await postJson(`${worker.url}/generate`, {
      input: { request_id: 'dup-3', workflow_json: saveWorkflow() },
    });
    await busy;
    sim.setNodeDelay(2);
    expect(a.status).toBe(200);
    expect(b.body).toEqual(a.body);
    expect(sim.prompts.length - before).toBe(2); // dup-2 once, dup-3 once
    expect(asyncDuplicate.status).toBe(409);
    expect(asyncDuplicate.body.error.field).toBe('request_id');
  });
});

describe('ordering and health', () => {
  test('concurrent requests run one at a time, in arrival order, each answered with its own job', async () => {
    sim.setNodeDelay(20);
    const started = sim.prompts.length;
    const results: string[] = [];
    const requests = Array.from({ length: 5 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 5));
      const res = await sync({ request_id: `order-${i}`, workflow_json: saveWorkflow(`order${i}`) });
      results.push(res.body.id);
      return res;
    });
    const responses = await Promise.all(requests);
    sim.setNodeDelay(2);
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const submitted = sim.prompts.slice(started).map((p) => JSON.stringify(p.body));
    expect(submitted.map((b) => /order(\d)/.exec(b)?.[1])).toEqual(['0', '1', '2', '3', '4']);
    // ComfyUI ran them in that order; the answers may cross (one job's outputs are collected while
    // the next already runs), but each caller gets its own.
    expect(responses.map((r) => r.body.id)).toEqual(['order-0', 'order-1', 'order-2', 'order-3', 'order-4']);
    expect([...results].sort()).toEqual(['order-0', 'order-1', 'order-2', 'order-3', 'order-4']);
  });

  test('GET /health reports ComfyUI reachability and queue depth', async () => {
    const res = await getJson(`${worker.url}/health`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'healthy',
      queue_depth: 0,
      comfyui: { url: sim.url, reachable: true, websocket: 'open' },
    });
  });
});
