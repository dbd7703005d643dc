// Queue control and websocket routing: /interrupt, /queue, clientId takeover, the prompt counter.

import { startSimulator, type Simulator } from '../../simulator';
import { WsRecorder, getJson, http, newClientId, postJson, submit, waitHistory } from '../contract/target';
import { chainWorkflow, saveWorkflow } from './workflows';

type History = Record<string, { status: { status_str: string; messages: Array<[string, Record<string, unknown>]> } }>;

describe('queue and routing', () => {
  let sim: Simulator;

  beforeEach(async () => {
    sim = await startSimulator();
  });

  afterEach(async () => {
    await sim.close();
  });

  test('/interrupt with another prompt_id is a no-op; with the running one it interrupts', async () => {
    sim.setNodeDelay({ ImageInvert: 250 });
    const id = newClientId();
    const ws = await WsRecorder.open(sim.url, id);
    const a = await submit(sim.url, chainWorkflow('a'), id);
    await ws.waitFor((m) => m.type === 'executing' && m.data['node'] === '2', 0);
    const r = await postJson(sim.url, '/interrupt', { prompt_id: 'not-running' });
    expect({ status: r.status, body: r.text }).toEqual({ status: 200, body: '' });
    const ha = (await waitHistory(sim.url, a)) as History;
    expect(ha[a]?.status.status_str).toBe('success');

    const from = ws.messages.length;
    const b = await submit(sim.url, chainWorkflow('b', 7), id);
    await ws.waitFor((m) => m.type === 'executing' && m.data['node'] === '2' && m.data['prompt_id'] === b, from);
    await postJson(sim.url, '/interrupt', { prompt_id: b });
    const msgs = await ws.untilDone(b, from);
    const stop = msgs.find((m) => m.type === 'execution_interrupted');
    expect(stop?.data).toMatchObject({ prompt_id: b, node_id: '3', node_type: 'SaveImage', executed: ['1', '2'] });
    const hb = (await waitHistory(sim.url, b)) as History;
    expect(hb[b]?.status.status_str).toBe('error');
    expect(hb[b]?.status.messages.at(-1)?.[0]).toBe('execution_interrupted');
    await ws.close();
  });

  test('an interrupt while idle is cleared when the next prompt starts', async () => {
    await http(`${sim.url}/interrupt`, { method: 'POST' });
    const p = await submit(sim.url, saveWorkflow('after-idle-interrupt'), null);
    const h = (await waitHistory(sim.url, p)) as History;
    expect(h[p]?.status.status_str).toBe('success');
  });

  test('/queue {delete} removes a pending prompt; {clear} empties the queue', async () => {
    sim.setNodeDelay({ ImageInvert: 1_500 }); // `a` still runs while the queue is read twice, even on a loaded machine
    const a = await submit(sim.url, chainWorkflow('run'), null);
    const b = await submit(sim.url, chainWorkflow('del', 1), null);
    const c = await submit(sim.url, chainWorkflow('clr', 2), null);
    const q = await getJson<{ queue_running: unknown[][]; queue_pending: unknown[][] }>(sim.url, '/queue');
    expect(q.queue_running.map((i) => i[1])).toEqual([a]);
    expect(q.queue_pending.map((i) => i[1])).toEqual([b, c]);
    expect(q.queue_pending[0]).toHaveLength(5);
    expect(await getJson(sim.url, '/prompt')).toEqual({ exec_info: { queue_remaining: 3 } });
    const del = await postJson(sim.url, '/queue', { delete: [b, a] });
    expect({ status: del.status, body: del.text }).toEqual({ status: 200, body: '' });
    const q2 = await getJson<{ queue_running: unknown[][]; queue_pending: unknown[][] }>(sim.url, '/queue');
    expect(q2.queue_running.map((i) => i[1])).toEqual([a]);
    expect(q2.queue_pending.map((i) => i[1])).toEqual([c]);
    await postJson(sim.url, '/queue', { clear: true });
    expect((await getJson<{ queue_pending: unknown[] }>(sim.url, '/queue')).queue_pending).toEqual([]);
    await waitHistory(sim.url, a);
    await new Promise((r) => setTimeout(r, 100));
    expect(await getJson(sim.url, `/history/${b}`)).toEqual({});
    expect(await getJson(sim.url, `/history/${c}`)).toEqual({});
  });

  test('a second socket with the same clientId takes over; the old one receives nothing more', async () => {
    const id = newClientId();
    const old = await WsRecorder.open(sim.url, id);
    const fresh = await WsRecorder.open(sim.url, id);
    const oldFrom = old.messages.length;
    const from = fresh.messages.length;
    const p = await submit(sim.url, saveWorkflow('takeover'), id);
    const msgs = await fresh.untilDone(p, from);
    expect(msgs.map((m) => m.type)).toContain('execution_success');
    await new Promise((r) => setTimeout(r, 50));
    expect(old.messages.slice(oldFrom)).toEqual([]);
    expect(old.closed).toBe(false);
    await old.close();
    await fresh.close();
  });

  test('ComfyUI quirk: closing the replaced socket also unregisters the new one', async () => {
    const id = newClientId();
    const old = await WsRecorder.open(sim.url, id);
    const fresh = await WsRecorder.open(sim.url, id);
    await old.close();
    await new Promise((r) => setTimeout(r, 50));
    const from = fresh.messages.length;
    const p = await submit(sim.url, saveWorkflow('orphan'), id);
    await waitHistory(sim.url, p);
    await new Promise((r) => setTimeout(r, 50));
    expect(fresh.messages.slice(from)).toEqual([]);
    await fresh.close();
  });

  test("connecting while this client's prompt runs gives status(sid) then a bare executing", async () => {
    sim.setNodeDelay({ ImageInvert: 1_500 }); // `a` still runs while the queue is read twice, even on a loaded machine
    const id = newClientId();
    const first = await WsRecorder.open(sim.url, id);
    const p = await submit(sim.url, chainWorkflow('reconnect'), id);
    await first.waitFor((m) => m.type === 'executing' && m.data['node'] === '2', 0);
    await first.close();
    const again = await WsRecorder.open(sim.url, id);
    await again.waitFor((m) => m.type === 'executing', 0);
    expect(again.messages.slice(0, 2)).toEqual([
      { type: 'status', data: { status: { exec_info: { queue_remaining: 1 } }, sid: id } },
      { type: 'executing', data: { node: '2' } },
    ]);
    await again.untilDone(p, 0);
    await again.close();
  });

  test('prompt counter counts rejected prompts; a given prompt_id is used; "number" and "front"', async () => {
    const bad = await postJson(sim.url, '/prompt', { prompt: { '1': { class_type: 'Nope', inputs: {} } } });
    expect(bad.status).toBe(400);
    const noPrompt = await postJson(sim.url, '/prompt', { client_id: 'x' });
    expect(noPrompt.status).toBe(400);
    const malformed = await postJson(sim.url, '/prompt', '{oops');
    expect(malformed.status).toBe(500);
    const ok = await postJson(sim.url, '/prompt', { prompt: saveWorkflow('n'), prompt_id: 'my-own-id' });
    expect(JSON.parse(ok.text)).toEqual({ prompt_id: 'my-own-id', number: 2, node_errors: {} });
    const given = await postJson(sim.url, '/prompt', { prompt: saveWorkflow('n2'), number: 7 });
    expect(given.text).toMatch(/"number": 7\.0,/);
    const front = await postJson(sim.url, '/prompt', { prompt: saveWorkflow('n3'), front: true });
    expect((JSON.parse(front.text) as { number: number }).number).toBe(-3);
    expect(sim.prompts.map((p) => p.prompt_id)[0]).toBe('my-own-id');
    expect(sim.prompts[0]?.body).toEqual({ prompt: saveWorkflow('n'), prompt_id: 'my-own-id' });
  });

  test('a prompt without client_id sends no lifecycle events; progress_state is broadcast', async () => {
    const watcher = await WsRecorder.open(sim.url, newClientId());
    const from = watcher.messages.length;
    const p = await submit(sim.url, saveWorkflow('anon'), null);
    await waitHistory(sim.url, p);
    await new Promise((r) => setTimeout(r, 50));
    const types = watcher.messages.slice(from).map((m) => m.type);
    expect(types).toEqual(['status', 'status', 'progress_state', 'progress_state', 'progress_state', 'progress_state', 'status']);
    await watcher.close();
  });
});
