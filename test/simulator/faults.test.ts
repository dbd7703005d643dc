// Fault injection: dropped, stalled, refused websockets; a process dying mid-job; slow /view.

import { WsRecorder, getJson, http, newClientId, submit, waitHistory } from '../contract/target';
import { startSimulator, type Simulator } from '../../simulator';
import { chainWorkflow, saveWorkflow } from './workflows';

describe('simulator faults', () => {
  let sim: Simulator;

  beforeEach(async () => {
    sim = await startSimulator();
  });

  afterEach(async () => {
    await sim.close();
  });

  test('dropWebsocketAfterEvents: sockets are cut mid-prompt, the prompt still completes, the fault resets', async () => {
    const id = newClientId();
    const ws = await WsRecorder.open(sim.url, id);
    const other = await WsRecorder.open(sim.url, newClientId('bystander'));
    sim.faults.dropWebsocketAfterEvents = 3;
    const from = ws.messages.length;
    const promptId = await submit(sim.url, saveWorkflow('drop'), id);
    await ws.waitFor(() => false, from, 5000).catch(() => undefined);
    expect(ws.closed).toBe(true);
    expect(other.closed).toBe(true);
    const types = ws.messages.slice(from).map((m) => m.type);
    // The queue-time status, then at most the 3 counted messages (status, execution_start, execution_cached).
    expect(types.length).toBeLessThanOrEqual(4);
    expect(types).not.toContain('progress_state');
    expect(sim.faults.dropWebsocketAfterEvents).toBeNull();
    const h = (await waitHistory(sim.url, promptId)) as Record<string, { status: { status_str: string } }>;
    expect(h[promptId]?.status.status_str).toBe('success');
    // A new socket works normally afterwards.
    const again = await WsRecorder.open(sim.url, id);
    const from2 = again.messages.length;
    const p2 = await submit(sim.url, saveWorkflow('drop2'), id);
    const msgs = await again.untilDone(p2, from2);
    expect(msgs.map((m) => m.type)).toContain('execution_success');
    await again.close();
  });

  test('stallWebsocket: nothing is sent, sockets stay open, prompts still run', async () => {
    sim.faults.stallWebsocket = true;
    const id = newClientId();
    const ws = await WsRecorder.open(sim.url, id, { waitFirst: false });
    const promptId = await submit(sim.url, saveWorkflow('stall'), id);
    await waitHistory(sim.url, promptId);
    await new Promise((r) => setTimeout(r, 100));
    expect(ws.messages).toEqual([]);
    expect(ws.closed).toBe(false);
    sim.faults.stallWebsocket = false;
    const from = ws.messages.length;
    const p2 = await submit(sim.url, saveWorkflow('stall2'), id);
    expect((await ws.untilDone(p2, from)).map((m) => m.type)).toContain('execution_success');
    await ws.close();
  });

  test('dieAfterEvents: the server dies mid-job; restart() comes back empty', async () => {
    const id = newClientId();
    const ws = await WsRecorder.open(sim.url, id);
    sim.faults.dieAfterEvents = 5;
    sim.setNodeDelay({ ImageInvert: 200 });
    const promptId = await submit(sim.url, chainWorkflow('die'), id);
    await ws.waitFor(() => false, 0, 3000).catch(() => undefined);
    expect(ws.closed).toBe(true);
    await expect(fetch(`${sim.url}/system_stats`)).rejects.toThrow();
    expect(sim.faults.dieAfterEvents).toBeNull();
    expect(sim.prompts.map((p) => p.prompt_id)).toEqual([promptId]);
    await sim.restart();
    expect(await getJson(sim.url, `/history/${promptId}`)).toEqual({});
    expect(await getJson(sim.url, '/queue')).toEqual({ queue_running: [], queue_pending: [] });
  });

  test('rejectWebsocket: upgrades are refused while HTTP works', async () => {
    sim.faults.rejectWebsocket = true;
    await expect(WsRecorder.open(sim.url, newClientId())).rejects.toThrow(/403/);
    expect((await http(`${sim.url}/system_stats`)).status).toBe(200);
    sim.faults.rejectWebsocket = false;
    const ws = await WsRecorder.open(sim.url, newClientId());
    expect(ws.messages[0]?.type).toBe('status');
    await ws.close();
  });

  test('viewDelayMs delays GET /view only', async () => {
    sim.faults.viewDelayMs = 400;
    const t0 = Date.now();
    const r = await http(`${sim.url}/view?filename=missing.png&type=output`);
    expect(r.status).toBe(404);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    // Only /view, shown by order rather than by a clock: while a /view is held for a minute
    // (longer than the test may run), other routes answer.
    sim.faults.viewDelayMs = 60_000;
    let viewAnswered = false;
    const held = http(`${sim.url}/view?filename=missing.png&type=output`).then(
      () => (viewAnswered = true),
      () => undefined, // cut when the simulator closes
    );
    expect((await http(`${sim.url}/queue`)).status).toBe(200);
    expect((await http(`${sim.url}/system_stats`)).status).toBe(200);
    expect(viewAnswered).toBe(false);
    await sim.close(); // ends the held delay
    await held;
  });
});
