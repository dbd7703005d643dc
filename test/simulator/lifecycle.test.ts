// crash() / restart() / close(): what a dead or restarted ComfyUI loses and what it keeps.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSimulator } from '../../simulator';
import { WsRecorder, getJson, http, newClientId, postJson, submit, waitHistory } from '../contract/target';
import { chainWorkflow, saveWorkflow } from './workflows';

describe('simulator lifecycle', () => {
  test('crash() resets connections and refuses new ones; restart() has fresh state but the files', async () => {
    const sim = await startSimulator();
    try {
      const url = sim.url;
      const id = newClientId();
      const ws = await WsRecorder.open(url, id);
      const first = await submit(url, saveWorkflow('kept'), id);
      await waitHistory(url, first);
      expect(existsSync(join(sim.dataDir, 'output', 'kept_00001_.png'))).toBe(true);

      await sim.crash();
      await ws.waitFor(() => false, ws.messages.length, 2000).catch(() => undefined);
      expect(ws.closed).toBe(true);
      await expect(fetch(`${url}/system_stats`)).rejects.toThrow();

      await sim.restart();
      expect(sim.url).toBe(url);
      expect(await getJson(url, `/history/${first}`)).toEqual({});
      expect(await getJson(url, '/history')).toEqual({});
      const view = await http(`${url}/view?filename=kept_00001_.png&type=output`);
      expect(view.status).toBe(200);
      // A new process counts prompts from 0 again, and the cache is gone: the same prompt runs again.
      const r = await postJson(url, '/prompt', { prompt: saveWorkflow('kept'), client_id: id });
      const body = JSON.parse(r.text) as { prompt_id: string; number: number };
      expect(body.number).toBe(0);
      const h = (await waitHistory(url, body.prompt_id)) as Record<
        string,
        {
          status: { messages: Array<[string, { nodes?: string[] }]> };
          outputs: Record<string, { images: Array<{ filename: string }> }>;
        }
      >;
      expect(h[body.prompt_id]?.status.messages[1]?.[1].nodes).toEqual([]);
      expect(h[body.prompt_id]?.outputs['2']?.images[0]?.filename).toBe('kept_00002_.png');
      expect(sim.prompts.map((p) => p.prompt_id)).toEqual([first, body.prompt_id]);
      expect(sim.requests.some((q) => q.method === 'GET' && q.path === '/ws')).toBe(true);
    } finally {
      await sim.close();
    }
  });

  test('crash() during a run loses the running and the pending prompt; nothing more is written', async () => {
    const sim = await startSimulator({ nodeDelayMs: { ImageInvert: 300 } });
    try {
      const id = newClientId();
      const ws = await WsRecorder.open(sim.url, id);
      const running = await submit(sim.url, chainWorkflow('lost'), id);
      const pending = await submit(sim.url, chainWorkflow('lost2', 1), id);
      await ws.waitFor((m) => m.type === 'executing' && m.data['node'] === '2', 0);
      await sim.crash();
      await new Promise((r) => setTimeout(r, 400));
      await sim.restart();
      expect(await getJson(sim.url, '/queue')).toEqual({ queue_running: [], queue_pending: [] });
      expect(await getJson(sim.url, `/history/${running}`)).toEqual({});
      expect(await getJson(sim.url, `/history/${pending}`)).toEqual({});
      expect(readdirSync(join(sim.dataDir, 'output'))).toEqual([]);
      expect(sim.prompts.map((p) => p.prompt_id)).toEqual([running, pending]);
    } finally {
      await sim.close();
    }
  });

  test('close() is graceful and idempotent', async () => {
    const sim = await startSimulator();
    const ws = await WsRecorder.open(sim.url, newClientId());
    await sim.close();
    await sim.close();
    await ws.waitFor(() => false, ws.messages.length, 2000).catch(() => undefined);
    expect(ws.closed).toBe(true);
    await expect(fetch(`${sim.url}/queue`)).rejects.toThrow();
  });

  test('a given dataDir is used, temp/ is emptied at start like ComfyUI does', async () => {
    const a = await startSimulator();
    const dir = a.dataDir;
    await submit(
      a.url,
      {
        '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 1, color: 0 } },
        '2': { class_type: 'PreviewImage', inputs: { images: ['1', 0] } },
      },
      null,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(readdirSync(join(dir, 'temp')).length).toBe(1);
    await a.close();
    const b = await startSimulator({ dataDir: dir });
    try {
      expect(b.dataDir).toBe(dir);
      expect(readdirSync(join(dir, 'temp'))).toEqual([]);
      expect(readdirSync(join(dir, 'input'))).toContain('example.png');
    } finally {
      await b.close();
    }
  });
});
