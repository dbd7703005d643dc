// POST /generate/stream (the API wrapper's server-sent events) and live progress in /status and
// /result: a real worker on the simulator, read by a real HTTP client.
import { startSimulator, type Simulator } from '../../simulator';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';
import { waitForStatus } from './support';

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
afterEach(() => {
  worker.runner.resume();
  sim.setNodeDelay(2);
});

type Event = Record<string, any>;

/** Opens a stream; `events` fills as they arrive, `done` resolves when the server ends it. */
async function openStream(
  input: Record<string, unknown>,
  query = '',
  signal?: AbortSignal,
): Promise<{ status: number; headers: Headers; events: Event[]; done: Promise<void> }> {
  const res = await fetch(`${worker.url}/generate/stream${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input }),
    signal,
  });
  const events: Event[] = [];
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split('\n')) if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as Event);
        }
      }
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
  })();
  return { status: res.status, headers: res.headers, events, done };
}

describe('POST /generate/stream', () => {
  test('a job waiting behind others: queued, its position going down, generating, final_result', async () => {
    worker.runner.pause();
    sim.setNodeDelay({ ImageScale: 300, '*': 2 });
    for (const name of ['ahead_a', 'ahead_b']) {
      expect((await postJson(`${worker.url}/generate`, { input: { workflow_json: slowWorkflow(name) } })).status).toBe(202);
    }
    const stream = await openStream({ request_id: 'streamed', workflow_json: saveWorkflow('streamed') });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(stream.headers.get('cache-control')).toBe('no-cache');
    expect(stream.headers.get('x-accel-buffering')).toBe('no');
    await until(() => stream.events.length >= 2, 5_000, 'the first status event');
    worker.runner.resume();
    await stream.done;

    const { events } = stream;
    expect(events[0]).toMatchObject({ request_id: 'streamed', status: 'queued', message: 'Request queued' });
    expect(events[1]).toMatchObject({
      request_id: 'streamed',
      status: 'pending',
      queue_position: { current_queue: 'preprocess', position: 2 },
      queue_info: { preprocess_queue_size: 3 },
    });
    const last = events[events.length - 1]!;
    expect(last).toMatchObject({
      request_id: 'streamed',
      status: 'final_result',
      result: { id: 'streamed', status: 'completed' },
    });
    expect(last.result.output[0].filename).toMatch(/^streamed_/);
    expect(typeof last.elapsed_time).toBe('number');

    const middle = events.slice(1, -1);
    for (const e of middle) {
      expect(Object.keys(e)).toEqual(
        expect.arrayContaining(['request_id', 'status', 'message', 'timestamp', 'elapsed_time', 'queue_info', 'queue_position']),
      );
    }
    // Pending events first, their position never going up and reaching 0; then generating ones.
    const statuses = middle.map((e) => e.status);
    const firstGenerating = statuses.indexOf('generating');
    expect(firstGenerating).toBeGreaterThan(0);
    expect(statuses.slice(0, firstGenerating).every((s) => s === 'pending')).toBe(true);
    expect(statuses.slice(firstGenerating).every((s) => s === 'generating')).toBe(true);
    const positions = middle.slice(0, firstGenerating).map((e) => e.queue_position.position);
    expect(positions[0]).toBe(2);
    expect(positions).toContain(0);
    for (let i = 1; i < positions.length; i++) expect(positions[i]).toBeLessThan(positions[i - 1]);
    // No two status events alike in a row: an event is sent on a change only.
    for (let i = 2; i < middle.length; i++) {
      const [a, b] = [middle[i - 1]!, middle[i]!];
      expect([a.status, a.message, a.queue_position.position]).not.toEqual([b.status, b.message, b.queue_position.position]);
    }
  });

  test('a client that disconnects does not cancel the job', async () => {
    sim.setNodeDelay({ ImageScale: 800, '*': 2 });
    const controller = new AbortController();
    const stream = await openStream({ request_id: 'left', workflow_json: slowWorkflow('left') }, '', controller.signal);
    await until(() => stream.events.some((e) => e.status === 'generating'), 5_000, 'the job to run');
    controller.abort();
    await stream.done;
    const final = await waitForStatus(worker.url, 'left');
    expect(final.status).toBe('completed');
    expect((await callJson('GET', `${worker.url}/result/left`)).body).toMatchObject({ status: 'completed' });
  });

  test('?cancel_on_disconnect=true: a client that disconnects cancels the job', async () => {
    sim.setNodeDelay({ ImageScale: 3_000, '*': 2 });
    const controller = new AbortController();
    // A colour no other test uses: ImageScale cached from an earlier run would end the job at once.
    const workflow = slowWorkflow('cancel_me');
    workflow['1']!.inputs.color = 424242;
    const stream = await openStream(
      { request_id: 'cancel-me', workflow_json: workflow },
      '?cancel_on_disconnect=true',
      controller.signal,
    );
    await until(() => sim.prompts.some((p) => JSON.stringify(p.body).includes('"cancel_me_')), 5_000, 'the prompt in ComfyUI');
    controller.abort();
    await stream.done;
    const final = await waitForStatus(worker.url, 'cancel-me');
    expect(final).toMatchObject({ status: 'cancelled', error_code: 'client_disconnected' });
  });

  test('a bad cancel_on_disconnect or a bad body is a 400 naming the field, before any event', async () => {
    const bad = await postJson(`${worker.url}/generate/stream?cancel_on_disconnect=maybe`, {
      input: { workflow_json: saveWorkflow() },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('cancel_on_disconnect');
    const neither = await postJson(`${worker.url}/generate/stream`, { input: {} });
    expect(neither.status).toBe(400);
    expect(neither.body.error.message).toContain('Must provide either workflow_json OR modifier');
  });
});

describe('live progress', () => {
  test('/status, /result and the stream show the node and the step of a running job', async () => {
    const slow = await startSimulator({ nodeDelayMs: 2, stepDelayMs: 150 });
    const own = await startTestWorker(slow.url);
    try {
      // Different seeds: ComfyUI would answer an identical graph from its cache, with no steps.
      const input = (seed: number) => ({
        modifier: 'Text2Image',
        modifications: { prompt: 'a cat', width: 64, height: 64, steps: 8, seed },
      });
      const submitted = await postJson(`${own.url}/run`, { input: { ...input(1), request_id: 'stepped' } });
      expect(submitted.status).toBe(200);
      const stream = fetch(`${own.url}/generate/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: { ...input(2), request_id: 'stepped-stream' } }),
      }).then((r) => r.text());
      let seen: any;
      await until(
        async () => {
          seen = (await callJson('GET', `${own.url}/status/stepped`)).body;
          return seen.status === 'running' && seen.progress?.current_node_progress?.value >= 1;
        },
        15_000,
        'a step in /status',
      );
      expect(seen.progress).toMatchObject({
        current_node: expect.any(String),
        current_node_progress: { value: expect.any(Number), max: 8 },
        total_nodes: expect.any(Number),
      });
      const result = (await callJson('GET', `${own.url}/result/stepped`)).body;
      expect(result).toMatchObject({ status: 'generating', progress: { current_node_progress: { max: 8 } } });
      const text = await stream;
      const messages = text
        .split('\n\n')
        .filter((b) => b.startsWith('data: '))
        .map((b) => (JSON.parse(b.slice(6)) as Event).message);
      expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/^Progress: \d+% \(\d\/8\)$/)]));
      expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/^Processing node: /)]));
    } finally {
      await own.stop();
      await slow.close();
    }
  });
});
