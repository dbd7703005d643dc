// Replays the recorded session (shared/comfy-traces, real ComfyUI v0.3.65) in the recorded order
// against one target and compares every answer with the recording. Against a fresh simulator
// even the prompt counter matches; against a real server (COMFYUI_CONTRACT_URL) the counter,
// file counters and Python set order are normalised.

import { decodePng, encodePng } from '../../simulator/png';
import { dumps as pyJsonStringify, loads as pyJsonParse } from '../../worker/util/pyjson';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  TRACES_DIR,
  normalize,
  normalizeRaw,
  normalizer,
  trace,
  traceBytes,
  uploadFixture,
  withIds,
  type Normalizer,
  type WsMessage,
} from './normalize';
import { WsRecorder, getJson, http, newClientId, openTarget, postJson, type Target } from './target';

const RECORDED_CLIENT = 'trace-client-d8782983';

interface RecordedRun {
  prompt_id: string;
  response?: { prompt_id: string; number: number; node_errors: Record<string, unknown> };
  messages: WsMessage[];
}

interface InvalidCase {
  request_json?: Record<string, unknown>;
  request_raw_body?: string;
  status: number;
  content_type?: string;
  body: unknown;
}

describe('recorded session replay', () => {
  let t: Target;
  let ws: WsRecorder;
  let live: Normalizer;
  const clientId = newClientId('trace-client');
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    // The recorded server had no checkpoints; LoadImage's list is the fresh install's example.png.
    t = await openTarget({ models: [] });
    ws = await WsRecorder.open(t.url, clientId);
    live = normalizer(t.live, { [clientId]: '<client>' });
  });

  afterAll(async () => {
    await ws.close();
    await t.close();
  });

  /** Normalises our side and the recording's side with the same placeholders. */
  function same(actual: unknown, recorded: unknown, ours: Record<string, string>, theirs: Record<string, string>): void {
    const a = normalize(actual, withIds(live, ours));
    const r = normalize(recorded, withIds(normalizer(t.live, { [RECORDED_CLIENT]: '<client>' }), theirs));
    expect(a).toEqual(r);
  }

  async function run(
    requestFile: string,
    label: string,
  ): Promise<{ promptId: string; response: Record<string, unknown>; messages: WsMessage[]; raw: string[] }> {
    const request = trace<Record<string, unknown>>(requestFile);
    const from = ws.messages.length;
    const r = await postJson(t.url, '/prompt', { ...request, client_id: clientId });
    expect(r.status).toBe(200);
    const response = JSON.parse(r.text) as Record<string, unknown>;
    const promptId = String(response['prompt_id']);
    ids[label] = promptId;
    const messages = await ws.untilDone(promptId, from);
    return { promptId, response, messages, raw: ws.rawSlice(from, from + messages.length) };
  }

  /** The recorded frames as Python's json.dumps wrote them (floats stay 0.0, 1.0). */
  function recordedFrames(file: string): string[] {
    const parsed = pyJsonParse(readFileSync(join(TRACES_DIR, file), 'utf8')) as Map<string, unknown>;
    return (parsed.get('messages') as unknown[]).map((m) => pyJsonStringify(m));
  }

  async function compareRun(
    label: string,
    requestFile: string,
    wsFile: string,
    historyFile: string,
    responseBody?: unknown,
  ): Promise<void> {
    const rec = trace<RecordedRun>(wsFile);
    const out = await run(requestFile, label);
    const tag = { [out.promptId]: `<prompt:${label}>` };
    const recTag = { [rec.prompt_id]: `<prompt:${label}>` };
    same(out.response, responseBody ?? rec.response, tag, recTag);
    same(out.messages, rec.messages, tag, recTag);
    // Byte level too, unless a real server's Python sets may come out in another order.
    const hasSets = rec.messages.some((m) => m.type === 'execution_error');
    if (!t.live || !hasSets) {
      const ours = out.raw.map((f) => normalizeRaw(f, withIds(live, tag)));
      const theirs = recordedFrames(wsFile).map((f) =>
        normalizeRaw(f, withIds(normalizer(t.live, { [RECORDED_CLIENT]: '<client>' }), recTag)),
      );
      expect(ours).toEqual(theirs);
    }
    same(await getJson(t.url, `/history/${out.promptId}`), trace(historyFile), tag, recTag);
  }

  test('GET /queue and GET /prompt are idle before any prompt', async () => {
    const rec = trace<Record<string, unknown>>('queue_idle.json');
    expect(await getJson(t.url, '/queue')).toEqual(rec['GET /queue']);
    expect(await getJson(t.url, '/prompt')).toEqual(rec['GET /prompt']);
  });

  test('successful run: response, ordered websocket messages, history', async () => {
    await compareRun(
      'success',
      'prompt_success_request.json',
      'ws_success_run.json',
      'history_success.json',
      trace<{ body: unknown }>('prompt_success_response.json').body,
    );
  });

  test('GET /view of the output: recorded headers, and the PNG', async () => {
    const meta = trace<{ headers: Record<string, string>; status: number }>('view_success_response_meta.json');
    const history = await getJson<Record<string, { outputs: Record<string, { images: Array<{ filename: string }> }> }>>(
      t.url,
      `/history/${ids['success']}`,
    );
    const filename = history[ids['success'] ?? '']?.outputs['4']?.images[0]?.filename ?? '';
    const r = await http(`${t.url}/view?filename=${encodeURIComponent(filename)}&subfolder=&type=output`);
    expect(r.status).toBe(meta.status);
    expect(r.headers.get('content-disposition')).toBe(`filename="${filename}"`);
    expect(r.headers.get('content-type')).toBe(meta.headers['Content-Type']);
    expect(r.headers.get('content-length')).toBe(String(r.bytes.length));
    expect(r.headers.get('accept-ranges')).toBe(meta.headers['Accept-Ranges']);
    // aiohttp's ETag is "<mtime_ns hex>-<size hex>".
    expect(r.headers.get('etag')).toMatch(new RegExp(`^"[0-9a-f]+-${r.bytes.length.toString(16)}"$`));
    expect(Number.isNaN(Date.parse(r.headers.get('last-modified') ?? ''))).toBe(false);
    const png = decodePng(r.bytes);
    expect(png && [png.width, png.height]).toEqual([256, 256]);
    if (!t.live) {
      expect(r.bytes.equals(traceBytes('view_success_output.png'))).toBe(true);
      expect(r.headers.get('etag')).toMatch(/-4b8"$/);
    }
  });

  test('identical prompt again: every node cached, executed with the previous filename', async () => {
    await compareRun('cached', 'prompt_success_request.json', 'ws_cached_rerun.json', 'history_cached_rerun.json');
  });

  test('POST /upload/image: overwrite, same bytes reuse the name, different bytes get " (1)"', async () => {
    const { original, mirrored } = uploadFixture(encodePng);
    const upload = async (bytes: Buffer, overwrite: boolean): Promise<{ status: number; body: unknown }> => {
      const form = new FormData();
      form.append('image', new Blob([new Uint8Array(bytes)], { type: 'image/png' }), 'trace_upload.png');
      form.append('type', 'input');
      if (overwrite) form.append('overwrite', 'true');
      const r = await http(`${t.url}/upload/image`, { method: 'POST', body: form });
      return { status: r.status, body: JSON.parse(r.text) as unknown };
    };
    for (const [file, bytes, overwrite] of [
      ['upload_image_response.json', original, true],
      ['upload_image_same_name_no_overwrite_response.json', original, false],
      ['upload_image_same_name_different_bytes_response.json', mirrored, false],
    ] as const) {
      const rec = trace<{ status: number; body: unknown }>(file);
      expect(await upload(bytes, overwrite)).toEqual({ status: rec.status, body: rec.body });
    }
  });

  test('LoadImage run of the uploaded file', async () => {
    await compareRun('loadimage', 'prompt_loadimage_request.json', 'ws_loadimage_run.json', 'history_loadimage.json');
  });

  test('the 13 invalid prompts: exact status, content type and body bytes', async () => {
    const text = readFileSync(join(TRACES_DIR, 'prompt_invalid_responses.json'), 'utf8');
    const cases = trace<Record<string, InvalidCase>>('prompt_invalid_responses.json');
    // Parsed again keeping Python float/int distinctions, to predict json.dumps' exact bytes.
    const exact = pyJsonParse(text) as Map<string, Map<string, unknown>>;
    expect(Object.keys(cases)).toHaveLength(13);
    // Every request is sent before comparing, so one mismatch does not shift the prompt counter
    // for the tests after this one.
    const actual: unknown[] = [];
    const expected: unknown[] = [];
    for (const [name, c] of Object.entries(cases)) {
      const body =
        c.request_raw_body ??
        JSON.stringify(
          c.request_json && 'client_id' in c.request_json ? { ...c.request_json, client_id: clientId } : c.request_json,
        );
      const r = await postJson(t.url, '/prompt', body);
      const raw = c.request_raw_body !== undefined;
      actual.push({
        name,
        status: r.status,
        type: r.headers.get('content-type'),
        body: raw ? r.text : (JSON.parse(r.text) as unknown),
        bytes: r.text,
      });
      expected.push({
        name,
        status: c.status,
        type: raw ? c.content_type : 'application/json; charset=utf-8',
        body: c.body,
        bytes: raw ? c.body : pyJsonStringify(exact.get(name)?.get('body')),
      });
    }
    expect(actual).toEqual(expected);
  });

  test('runtime error: SaveImage prefix escaping the output folder', async () => {
    await compareRun(
      'saveimage_error',
      'prompt_runtime_error_saveimage_request.json',
      'ws_runtime_error_saveimage.json',
      'history_runtime_error_saveimage.json',
    );
  });

  test('runtime error: ImageBlend batch 2 vs 3 (node 2 runs before node 1)', async () => {
    await compareRun(
      'blend_error',
      'prompt_runtime_error_imageblend_request.json',
      'ws_runtime_error_imageblend.json',
      'history_runtime_error_imageblend.json',
    );
  });

  test('POST /interrupt while node 2 runs: stops when node 3 starts', async () => {
    // Give the simulator's ImageScale the real one's slowness; a real server needs no help.
    t.sim?.setNodeDelay({ ImageScale: 600 });
    const rec = trace<RecordedRun & { interrupt_response: { status: number; body: string } }>('ws_interrupted_run.json');
    const request = trace<Record<string, unknown>>('prompt_interrupted_request.json');
    const from = ws.messages.length;
    const r = await postJson(t.url, '/prompt', { ...request, client_id: clientId });
    const response = JSON.parse(r.text) as Record<string, unknown>;
    const promptId = String(response['prompt_id']);
    ids['interrupt'] = promptId;
    await ws.waitFor((m) => m.type === 'executing' && m.data['node'] === '2' && m.data['prompt_id'] === promptId, from);
    const ir = await http(`${t.url}/interrupt`, { method: 'POST' });
    expect({ status: ir.status, body: ir.text }).toEqual(rec.interrupt_response);
    const messages = await ws.untilDone(promptId, from, 60000);
    t.sim?.setNodeDelay(0);
    const tag = { [promptId]: '<prompt>' };
    const recTag = { [rec.prompt_id]: '<prompt>' };
    same(response, rec.response, tag, recTag);
    same(messages, rec.messages, tag, recTag);
    same(await getJson(t.url, `/history/${promptId}`), trace('history_interrupted.json'), tag, recTag);
  });

  test('GET /history?max_items=2: the two most recent entries, oldest first', async () => {
    const rec = trace<Record<string, unknown>>('history_list_max_items_2.json');
    const [blendRec, interruptRec] = Object.keys(rec);
    same(
      await getJson(t.url, '/history?max_items=2'),
      rec,
      { [ids['blend_error'] ?? '']: '<blend>', [ids['interrupt'] ?? '']: '<interrupt>' },
      { [blendRec ?? '']: '<blend>', [interruptRec ?? '']: '<interrupt>' },
    );
  });

  test('GET /queue and GET /prompt after the runs', async () => {
    const rec = trace<Record<string, unknown>>('queue_after_runs.json');
    expect(await getJson(t.url, '/queue')).toEqual(rec['GET /queue']);
    expect(await getJson(t.url, '/prompt')).toEqual(rec['GET /prompt']);
  });
});
