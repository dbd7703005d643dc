// Execution details beyond the recorded traces: KSampler progress, partial caching, previews,
// other output kinds, subfolders and batches.

import { startSimulator, type Simulator } from '../../simulator';
import { decodePng } from '../../simulator/png';
import { WsRecorder, getJson, http, newClientId, postJson, submit, waitHistory } from '../contract/target';
import type { WsMessage } from '../contract/normalize';
import { saveWorkflow, txt2img } from './workflows';

type Outputs = Record<string, Record<string, unknown[]>>;
type History = Record<
  string,
  { outputs: Outputs; status: { status_str: string; messages: Array<[string, Record<string, unknown>]> } }
>;

async function outputsOf(url: string, promptId: string): Promise<Outputs> {
  const h = (await waitHistory(url, promptId)) as History;
  return h[promptId]?.outputs ?? {};
}

describe('execution', () => {
  let sim: Simulator;
  let ws: WsRecorder;
  const id = newClientId();

  beforeAll(async () => {
    sim = await startSimulator({ stepDelayMs: 5 });
    ws = await WsRecorder.open(sim.url, id);
  });

  afterAll(async () => {
    await ws.close();
    await sim.close();
  });

  async function runAndCollect(prompt: unknown): Promise<{ promptId: string; msgs: WsMessage[] }> {
    const from = ws.messages.length;
    const promptId = await submit(sim.url, prompt, id);
    return { promptId, msgs: await ws.untilDone(promptId, from) };
  }

  test('KSampler reports each step: progress_state (running k/steps) then progress', async () => {
    const { promptId, msgs } = await runAndCollect(txt2img({ steps: 4, seed: 42 }));
    const progress = msgs.filter((m) => m.type === 'progress');
    expect(progress.map((m) => m.data)).toEqual([1, 2, 3, 4].map((value) => ({ value, max: 4, prompt_id: promptId, node: '3' })));
    for (const p of progress) {
      const before = msgs[msgs.indexOf(p) - 1];
      expect(before?.type).toBe('progress_state');
      expect((before?.data['nodes'] as Record<string, unknown>)['3']).toMatchObject({
        value: p.data['value'],
        max: 4,
        state: 'running',
      });
    }
    const order = msgs.filter((m) => m.type === 'executing' && m.data['node'] !== null).map((m) => m.data['node']);
    // ExecutionList: the walk from 9 leaves pending = 9,8,4,3,5,7,6; 4 goes first because it feeds
    // VAEDecode which feeds the output node; then the first ready node in pending order.
    expect(order).toEqual(['4', '5', '7', '6', '3', '8', '9']);
    const outputs = await outputsOf(sim.url, promptId);
    const img = outputs['9']?.['images']?.[0] as { filename: string };
    const png = decodePng((await http(`${sim.url}/view?filename=${img.filename}&type=output`)).bytes);
    expect(png && [png.width, png.height]).toEqual([512, 512]);
  });

  test('an interrupt during sampling stops at the next step', async () => {
    sim.setNodeDelay(0);
    const from = ws.messages.length;
    const promptId = await submit(sim.url, txt2img({ steps: 200, seed: 7 }), id);
    await ws.waitFor((m) => m.type === 'progress' && m.data['prompt_id'] === promptId && m.data['value'] === 2, from);
    await http(`${sim.url}/interrupt`, { method: 'POST' });
    const msgs = await ws.untilDone(promptId, from);
    const stop = msgs.find((m) => m.type === 'execution_interrupted');
    expect(stop?.data).toMatchObject({ prompt_id: promptId, node_id: '3', node_type: 'KSampler' });
    expect(msgs.filter((m) => m.type === 'progress').length).toBeLessThan(200);
  });

  test('only changed nodes run: a new filename_prefix re-runs SaveImage alone', async () => {
    const base = {
      '1': { class_type: 'EmptyImage', inputs: { width: 16, height: 16, batch_size: 1, color: 77 } },
      '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
    };
    await runAndCollect({ ...base, '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'partA' } } });
    const { msgs } = await runAndCollect({
      ...base,
      '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'partB' } },
    });
    expect(msgs.find((m) => m.type === 'execution_cached')?.data['nodes']).toEqual(['1', '2']);
    expect(msgs.filter((m) => m.type === 'executing' && m.data['node'] !== null).map((m) => m.data['node'])).toEqual(['3']);
  });

  test('PreviewImage writes ComfyUI_temp_xxxxx_00001_.png into temp/', async () => {
    const { promptId } = await runAndCollect({
      '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 2, color: 5 } },
      '2': { class_type: 'PreviewImage', inputs: { images: ['1', 0] } },
    });
    const images = (await outputsOf(sim.url, promptId))['2']?.['images'] as Array<{
      filename: string;
      subfolder: string;
      type: string;
    }>;
    expect(images).toHaveLength(2);
    expect(images[0]?.filename).toMatch(/^ComfyUI_temp_[a-z]{5}_00001_\.png$/);
    expect(images[1]?.filename).toBe(images[0]?.filename.replace('00001', '00002'));
    expect(images.map((i) => [i.subfolder, i.type])).toEqual([
      ['', 'temp'],
      ['', 'temp'],
    ]);
    expect((await http(`${sim.url}/view?filename=${images[0]?.filename}&type=temp`)).status).toBe(200);
  });

  test('SaveImage: subfolder in the prefix, one file per batch item, counter after existing files', async () => {
    const first = await runAndCollect(saveWorkflow('audio/clip', 1));
    const second = await runAndCollect(saveWorkflow('audio/clip', 2, 64, 3));
    expect((await outputsOf(sim.url, first.promptId))['2']?.['images']).toEqual([
      { filename: 'clip_00001_.png', subfolder: 'audio', type: 'output' },
    ]);
    const names = ((await outputsOf(sim.url, second.promptId))['2']?.['images'] as Array<{ filename: string }>).map(
      (i) => i.filename,
    );
    expect(names).toEqual(['clip_00002_.png', 'clip_00003_.png', 'clip_00004_.png']);
    const r = await http(`${sim.url}/view?filename=clip_00003_.png&subfolder=audio&type=output`);
    expect(r.status).toBe(200);
    expect((await http(`${sim.url}/view?filename=clip_00003_.png&subfolder=../../etc&type=output`)).status).toBe(403);
    expect((await http(`${sim.url}/view?filename=../x.png&type=output`)).status).toBe(400);
  });

  test('PreviewAny shows text; SaveAnimatedWEBP gives images plus animated', async () => {
    const { promptId } = await runAndCollect({
      '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 3, color: 0 } },
      '2': { class_type: 'PreviewAny', inputs: { source: 'hello' } },
      '3': {
        class_type: 'SaveAnimatedWEBP',
        inputs: { images: ['1', 0], filename_prefix: 'anim', fps: 6, lossless: true, quality: 80, method: 'default' },
      },
    });
    const outputs = await outputsOf(sim.url, promptId);
    expect(outputs['2']).toEqual({ text: ['hello'] });
    expect(outputs['3']).toEqual({ images: [{ filename: 'anim_00001_.webp', subfolder: '', type: 'output' }], animated: [true] });
    const webp = await http(`${sim.url}/view?filename=anim_00001_.webp&type=output`);
    expect(webp.headers.get('content-type')).toBe('image/webp');
    expect(webp.bytes.subarray(8, 12).toString('latin1')).toBe('WEBP');
  });

  test('validation converts values in place; history shows the converted prompt', async () => {
    const r = await postJson(sim.url, '/prompt', {
      prompt: {
        '1': { class_type: 'EmptyImage', inputs: { width: '32', height: 32.9, batch_size: 1, color: 0 } },
        '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 12 } },
      },
      client_id: id,
    });
    const promptId = (JSON.parse(r.text) as { prompt_id: string }).prompt_id;
    const h = (await waitHistory(sim.url, promptId)) as Record<
      string,
      { prompt: [number, string, Record<string, { inputs: Record<string, unknown> }>] }
    >;
    expect(h[promptId]?.prompt[2]['1']?.inputs).toEqual({ width: 32, height: 32, batch_size: 1, color: 0 });
    expect(h[promptId]?.prompt[2]['2']?.inputs['filename_prefix']).toBe('12');
  });

  test('GET /history list, offset, POST /history delete and clear', async () => {
    const all = await getJson<Record<string, unknown>>(sim.url, '/history');
    const ids = Object.keys(all);
    expect(ids.length).toBeGreaterThan(3);
    expect(Object.keys(await getJson(sim.url, '/history?max_items=2&offset=1'))).toEqual(ids.slice(1, 3));
    await postJson(sim.url, '/history', { delete: [ids[0]] });
    expect(Object.keys(await getJson(sim.url, '/history'))).toEqual(ids.slice(1));
    await postJson(sim.url, '/history', { clear: true });
    expect(await getJson(sim.url, '/history')).toEqual({});
  });
});
