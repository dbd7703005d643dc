// The websocket session against the simulator: one socket per client, reconnects, and recovery
// after an outage longer than the reconnect budget.
import { createLogger } from '../observability/logger';
import { startSimulator, type Simulator } from '../../simulator';
import { WebSocketServer } from 'ws';
import { ComfyClient } from './client';
import { ComfySession } from './session';

let sim: Simulator;
beforeEach(async () => {
  sim = await startSimulator();
});
afterEach(async () => {
  await sim.close();
});

function client(attempts = 2, delayMs = 100): ComfyClient {
  return new ComfyClient({
    baseUrl: sim.url,
    clientId: `session-test-${Math.random()}`,
    reconnectAttempts: attempts,
    reconnectDelayMs: delayMs,
    websocketTrace: false,
    historyPollMs: 1000,
    logger: createLogger('silent'),
  });
}

const upgrades = () => sim.requests.filter((r) => r.path === '/ws').length;
const waitFor = async (check: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('concurrent readiness waits share one websocket', async () => {
  const c = client();
  try {
    const before = upgrades();
    await Promise.all([c.waitUntilReady(5_000), c.waitUntilReady(5_000), c.session.connect()]);
    expect(upgrades() - before).toBe(1);
    expect(c.session.state).toBe('open');
  } finally {
    c.close();
  }
});

test('an outage longer than the reconnect budget: down, then back by itself when ComfyUI returns', async () => {
  const c = client(2, 100);
  const events: string[] = [];
  c.session.on('down', () => events.push('down'));
  c.session.on('reconnected', () => events.push('reconnected'));
  try {
    await c.waitUntilReady(5_000);
    await sim.crash();
    await waitFor(() => c.session.state === 'down', 5_000);
    await new Promise((r) => setTimeout(r, 500)); // well past the budget, nobody asks it to reconnect
    await sim.restart();
    await waitFor(() => c.session.isOpen, 15_000);
    expect(events).toEqual(['down', 'reconnected']);
  } finally {
    c.close();
  }
});

test('a dropped socket comes straight back without being down', async () => {
  const c = client(3, 100);
  const events: string[] = [];
  c.session.on('down', () => events.push('down'));
  c.session.on('reconnected', () => events.push('reconnected'));
  try {
    await c.waitUntilReady(5_000);
    sim.faults.dropWebsocketAfterEvents = 0;
    await c.http.submit({
      promptId: crypto.randomUUID(),
      clientId: c.session.clientId,
      workflow: {
        '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 1, color: 0 } },
        '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'drop' } },
      },
      extraData: {},
    });
    await waitFor(() => events.includes('reconnected'), 5_000);
    expect(events).toEqual(['reconnected']);
  } finally {
    c.close();
  }
});

test('a server that accepts the websocket and drops it at once does not make the session reconnect without pause', async () => {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => server.once('listening', r));
  let connections = 0;
  server.on('connection', (socket) => {
    connections += 1;
    socket.close();
  });
  const { port } = server.address() as { port: number };
  const session = new ComfySession({
    baseUrl: `http://127.0.0.1:${port}`,
    clientId: 'flapping',
    reconnectAttempts: 2,
    reconnectDelayMs: 100,
    trace: false,
    logger: createLogger('silent'),
  });
  const states: string[] = [];
  session.on('down', () => states.push('down'));
  try {
    await session.connect();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(connections).toBeLessThan(10); // an immediate-retry loop would make hundreds
    expect(states.length).toBeGreaterThanOrEqual(1);
  } finally {
    session.close();
    await new Promise((r) => server.close(r));
  }
});

test("progress_state frames (ComfyUI's json.dumps text) reach no listener; every other frame does", async () => {
  // The raw text as the server sends it, read by a plain websocket client.
  const { WebSocket } = await import('ws');
  const raw: string[] = [];
  const socket = new WebSocket(`${sim.url.replace('http', 'ws')}/ws?clientId=raw-reader`);
  socket.on('message', (data) => raw.push(data.toString()));
  await new Promise((resolve) => socket.once('open', resolve));
  const workflow = {
    '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 1, color: 1 } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'raw' } },
  };
  await fetch(`${sim.url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt: workflow, client_id: 'raw-reader' }) });
  await waitFor(() => raw.some((t) => t.includes('"executing", "data": {"node": null')), 5_000);
  socket.close();
  expect(raw.some((t) => t.startsWith('{"type": "progress_state", "data": {'))).toBe(true);

  const c = client();
  try {
    await c.waitUntilReady(5_000);
    const seen: string[] = [];
    workflow['1'].inputs.color = 2;
    await c.runPrompt({
      promptId: crypto.randomUUID(),
      workflow,
      extraData: {},
      signal: new AbortController().signal,
      onEvent: (event) => seen.push(event.type),
    });
    expect(seen).toEqual(expect.arrayContaining(['execution_start', 'executing', 'executed', 'execution_success']));
    expect(seen).not.toContain('progress_state');
  } finally {
    c.close();
  }
});
