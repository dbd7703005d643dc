// Smaller HTTP behaviours: unknown routes, /api prefix, /free, uploads and /view corner cases,
// extra_data in history and PNG metadata.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { encodePng } from '../../simulator/png';
import { uploadFixture } from '../contract/normalize';
import { WsRecorder, getJson, http, newClientId, postJson, submit, waitHistory } from '../contract/target';
import { saveWorkflow } from './workflows';

/** tEXt chunks of a PNG. */
function pngText(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (let p = 8; p < buf.length;) {
    const len = buf.readUInt32BE(p);
    if (buf.toString('latin1', p + 4, p + 8) === 'tEXt') {
      const body = buf.subarray(p + 8, p + 8 + len);
      const z = body.indexOf(0);
      out[body.toString('latin1', 0, z)] = body.toString('latin1', z + 1);
    }
    p += 12 + len;
  }
  return out;
}

async function uploadForm(
  url: string,
  fields: Record<string, string | { name: string; bytes: Buffer }>,
): Promise<{ status: number; text: string }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') form.append(k, v);
    else form.append(k, new Blob([new Uint8Array(v.bytes)], { type: 'image/png' }), v.name);
  }
  const r = await http(`${url}/upload/image`, { method: 'POST', body: form });
  return { status: r.status, text: r.text };
}

describe('routes', () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startSimulator();
  });

  afterAll(async () => {
    await sim.close();
  });

  test('unknown routes 404, wrong methods 405, every route also under /api', async () => {
    const nf = await http(`${sim.url}/nope`);
    expect({ status: nf.status, text: nf.text, type: nf.headers.get('content-type') }).toEqual({
      status: 404,
      text: '404: Not Found',
      type: 'text/plain; charset=utf-8',
    });
    const na = await http(`${sim.url}/interrupt`);
    expect(na.status).toBe(405);
    expect(await getJson(sim.url, '/api/queue')).toEqual({ queue_running: [], queue_pending: [] });
    const p = await postJson(sim.url, '/api/prompt', { prompt: saveWorkflow('api') });
    expect(p.status).toBe(200);
    expect(p.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(sim.requests.filter((r) => r.path === '/api/prompt' && r.method === 'POST')).toHaveLength(1);
  });

  test('POST /free: 200 empty for a JSON body, 500 without one (aiohttp request.json())', async () => {
    const ok = await postJson(sim.url, '/free', { unload_models: true, free_memory: true });
    expect({ status: ok.status, text: ok.text }).toEqual({ status: 200, text: '' });
    const empty = await http(`${sim.url}/free`, { method: 'POST' });
    expect(empty.status).toBe(500);
  });

  test('the request log keeps the JSON bodies of POST /interrupt, /queue and /free', async () => {
    const from = sim.requests.length;
    await postJson(sim.url, '/interrupt', { prompt_id: 'p-1' });
    await http(`${sim.url}/interrupt`, { method: 'POST' }); // bare: no body
    await postJson(sim.url, '/api/queue', { delete: ['p-2'] });
    await postJson(sim.url, '/free', { free_memory: true });
    expect(sim.requests.slice(from).map(({ method, path, body }) => ({ method, path, body }))).toEqual([
      { method: 'POST', path: '/interrupt', body: { prompt_id: 'p-1' } },
      { method: 'POST', path: '/interrupt', body: undefined },
      { method: 'POST', path: '/api/queue', body: { delete: ['p-2'] } },
      { method: 'POST', path: '/free', body: { free_memory: true } },
    ]);
  });

  test('POST /free {free_memory} drops the cache: an identical prompt runs again', async () => {
    const id = newClientId();
    const ws = await WsRecorder.open(sim.url, id);
    const first = await submit(sim.url, saveWorkflow('free', 9), id);
    await ws.untilDone(first, 0);
    await postJson(sim.url, '/free', { free_memory: true });
    const from = ws.messages.length;
    const again = await submit(sim.url, saveWorkflow('free', 9), id);
    const msgs = await ws.untilDone(again, from);
    expect(msgs.find((m) => m.type === 'execution_cached')?.data['nodes']).toEqual([]);
    await ws.close();
  });

  test('upload: missing image 400, escaping subfolder 400, bad type 500, subfolder kept', async () => {
    const { original } = uploadFixture(encodePng);
    expect((await uploadForm(sim.url, { type: 'input' })).status).toBe(400);
    expect((await uploadForm(sim.url, { image: { name: 'x.png', bytes: original }, subfolder: '../..' })).status).toBe(400);
    expect((await uploadForm(sim.url, { image: { name: 'x.png', bytes: original }, type: 'models' })).status).toBe(500);
    const r = await uploadForm(sim.url, { image: { name: 'pic.png', bytes: original }, subfolder: 'jobs/7', overwrite: '1' });
    expect(JSON.parse(r.text)).toEqual({ name: 'pic.png', subfolder: 'jobs/7', type: 'input' });
    expect(readFileSync(join(sim.dataDir, 'input', 'jobs', '7', 'pic.png')).equals(original)).toBe(true);
    const v = await http(`${sim.url}/view?filename=pic.png&subfolder=jobs/7&type=input`);
    expect(v.bytes.equals(original)).toBe(true);
  });

  test('LoadImage accepts "subfolder/name" and "name [output]"; a missing file fails validation', async () => {
    const { original } = uploadFixture(encodePng);
    await uploadForm(sim.url, { image: { name: 'sub.png', bytes: original }, subfolder: 'deep', overwrite: 'true' });
    const load = (image: string): unknown => ({
      '1': { class_type: 'LoadImage', inputs: { image } },
      '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'loaded' } },
    });
    const a = await submit(sim.url, load('deep/sub.png'), null);
    const ha = (await waitHistory(sim.url, a)) as Record<
      string,
      { outputs: Record<string, { images: Array<{ filename: string }> }> }
    >;
    const name = ha[a]?.outputs['2']?.images[0]?.filename ?? '';
    const b = await submit(sim.url, load(`${name} [output]`), null);
    await waitHistory(sim.url, b);
    const bad = await postJson(sim.url, '/prompt', { prompt: load('deep/none.png') });
    expect(JSON.parse(bad.text)).toMatchObject({
      node_errors: {
        '1': { errors: [{ type: 'custom_validation_failed', details: 'image - Invalid image file: deep/none.png' }] },
      },
    });
    // LoadImage -> SaveImage keeps the size (IHDR width and height).
    const saved = (await http(`${sim.url}/view?filename=${name}&type=output`)).bytes;
    expect(saved.subarray(16, 24).equals(original.subarray(16, 24))).toBe(true);
  });

  test('extra_data is kept in history; extra_pnginfo goes into the PNG next to the prompt', async () => {
    const id = newClientId();
    const p = await submit(sim.url, saveWorkflow('meta', 3), id, {
      extra_data: { extra_pnginfo: { workflow: { nodes: [] } }, job: 'j-1' },
    });
    const h = (await waitHistory(sim.url, p)) as Record<string, { prompt: unknown[] }>;
    expect(h[p]?.prompt[3]).toEqual({ extra_pnginfo: { workflow: { nodes: [] } }, job: 'j-1', client_id: id });
    const png = (await http(`${sim.url}/view?filename=meta_00001_.png&type=output`)).bytes;
    const text = pngText(png);
    expect(JSON.parse(text['prompt'] ?? '')).toEqual(saveWorkflow('meta', 3));
    expect(text['workflow']).toBe('{"nodes": []}');
  });

  test('GET /view: Range requests, If-None-Match, type=temp|input|bad', async () => {
    const p = await submit(sim.url, saveWorkflow('ranged', 4), null);
    await waitHistory(sim.url, p);
    const full = await http(`${sim.url}/view?filename=ranged_00001_.png`);
    const part = await http(`${sim.url}/view?filename=ranged_00001_.png`, { headers: { Range: 'bytes=0-7' } });
    expect(part.status).toBe(206);
    expect(part.bytes.equals(full.bytes.subarray(0, 8))).toBe(true);
    const etag = full.headers.get('etag') ?? '';
    expect((await http(`${sim.url}/view?filename=ranged_00001_.png`, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    expect((await http(`${sim.url}/view?filename=ranged_00001_.png&type=bogus`)).status).toBe(400);
    expect((await http(`${sim.url}/view?filename=example.png&type=input`)).status).toBe(200);
    expect((await http(`${sim.url}/view?filename=ranged_00001_.png [output]&type=input`)).status).toBe(200);
  });
});
