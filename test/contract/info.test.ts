// Read-only routes and the websocket handshake, compared with the recording.
//
// What the comparison proves depends on the target. Against a live ComfyUI (t.live) it compares
// the real server with its recording. Against the simulator, /system_stats, /features and the
// nine recorded classes of /object_info are served from verbatim copies of these very trace files
// (simulator/recorded/, checked below to be byte-identical), so there the tests show that the
// copies are served unaltered (argv rewritten; floats, 2**64-1 and key order kept to the byte,
// which the simulator rebuilds from the schema after a JSON import), not that the simulator
// derives them. /embeddings, /object_info/{class} (recorded separately), /view and the
// websocket frames are produced by the simulator's own code.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dumps as pyJsonStringify, loads as pyJsonParse } from '../../worker/util/pyjson';
import { TRACES_DIR, normalize, normalizer, shape, trace, type WsMessage } from './normalize';
import { WsRecorder, getJson, http, newClientId, openTarget, type Target } from './target';

const USED = [
  'EmptyImage',
  'SaveImage',
  'PreviewImage',
  'LoadImage',
  'ImageInvert',
  'ImageScale',
  'ImageBlend',
  'KSampler',
  'CheckpointLoaderSimple',
];

/** Lists that depend on the server's files (input images, checkpoints). */
function withoutFileLists(info: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(info)) as Record<string, { input: { required: Record<string, unknown[]> } }>;
  const load = copy['LoadImage']?.input.required['image'];
  if (load) load[0] = '<files>';
  const ckpt = copy['CheckpointLoaderSimple']?.input.required['ckpt_name'];
  if (ckpt) ckpt[0] = '<files>';
  return copy;
}

describe('read-only routes', () => {
  let t: Target;

  beforeAll(async () => {
    t = await openTarget({ models: [] });
  });

  afterAll(async () => {
    await t.close();
  });

  test('the simulator serves byte-identical copies of the recorded system_stats, features and object_info', () => {
    for (const name of ['system_stats.json', 'features.json', 'object_info_used_nodes.json'])
      expect(readFileSync(join(__dirname, '../../simulator/recorded', name)).equals(readFileSync(join(TRACES_DIR, name)))).toBe(
        true,
      );
  });

  test('GET /system_stats (simulator: its copy of the recording, argv rewritten)', async () => {
    const rec = trace<{ system: { argv: string[] } }>('system_stats.json');
    const got = await getJson<{ system: { argv: string[] } }>(t.url, '/system_stats');
    expect(shape(got)).toEqual(shape(rec));
    expect(got.system).toMatchObject({ comfyui_version: '0.3.65', os: 'posix' });
    if (!t.live) {
      const url = new URL(t.url);
      expect(got).toEqual({
        ...rec,
        system: {
          ...rec.system,
          argv: [
            'main.py',
            '--cpu',
            '--listen',
            url.hostname,
            '--port',
            url.port,
            '--disable-auto-launch',
            '--disable-api-nodes',
          ],
        },
      });
    }
  });

  test('GET /features (simulator: its copy of the recording), GET /embeddings (also under /api)', async () => {
    expect(await getJson(t.url, '/features')).toEqual(trace('features.json'));
    expect(await getJson(t.url, '/api/features')).toEqual(trace('features.json'));
    expect(await getJson(t.url, '/embeddings')).toEqual(trace('embeddings.json'));
  });

  test('GET /object_info: the used node classes exactly as recorded (simulator: its copy, served to the byte)', async () => {
    const r = await http(`${t.url}/object_info`);
    const got = JSON.parse(r.text) as Record<string, unknown>;
    const rec = trace<Record<string, unknown>>('object_info_used_nodes.json');
    const names = trace<string[]>('object_info_node_names.json');
    for (const n of USED) expect(names).toContain(n);
    const pick = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(USED.map((n) => [n, o[n]]));
    if (t.live) {
      expect(withoutFileLists(pick(got))).toEqual(withoutFileLists(rec));
      return;
    }
    expect(pick(got)).toEqual(rec);
    // Byte level: floats stay floats (8.0), the seed maximum stays 2**64-1.
    const exact = pyJsonParse(r.text) as Map<string, unknown>;
    const exactRec = pyJsonParse(readFileSync(join(TRACES_DIR, 'object_info_used_nodes.json'), 'utf8')) as Map<string, unknown>;
    for (const n of USED) expect(pyJsonStringify(exact.get(n))).toBe(pyJsonStringify(exactRec.get(n)));
    expect(r.text).toContain('"max": 18446744073709551615');
    expect(r.text).toContain('"cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0');
  });

  test('GET /object_info/EmptyImage; unknown class gives {}', async () => {
    const r = await http(`${t.url}/object_info/EmptyImage`);
    expect(JSON.parse(r.text)).toEqual(trace('object_info_single_EmptyImage.json'));
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await getJson(t.url, '/object_info/NoSuchNode')).toEqual({});
  });

  test('GET /view of a missing file: 404 with an empty body', async () => {
    const rec = trace<{ request: { params: Record<string, string> }; status: number; body: string }>(
      'view_missing_response.json',
    );
    const r = await http(`${t.url}/view?${new URLSearchParams(rec.request.params).toString()}`);
    expect({ status: r.status, body: r.text }).toEqual({ status: rec.status, body: rec.body });
  });

  test('websocket connect: one status frame with sid', async () => {
    const rec = trace<{ url: string; messages: WsMessage[] }>('ws_connect_messages.json');
    const id = newClientId('trace-client');
    const ws = await WsRecorder.open(t.url, id);
    await new Promise((r) => setTimeout(r, 100));
    const recId = new URL(rec.url, 'http://x').searchParams.get('clientId') ?? '';
    expect(normalize(ws.messages, normalizer(t.live, { [id]: '<sid>' }))).toEqual(
      normalize(rec.messages, normalizer(t.live, { [recId]: '<sid>' })),
    );
    await ws.close();
  });

  test('websocket connect with a feature_flags hello: the server answers with its flags', async () => {
    const rec = trace<{ url: string; client_sent_first: unknown; messages: WsMessage[] }>(
      'ws_connect_feature_flags_messages.json',
    );
    const id = newClientId('trace-client-ff');
    const ws = await WsRecorder.open(t.url, id, { firstMessage: rec.client_sent_first });
    await ws.waitFor((m) => m.type === 'feature_flags', 0);
    const recId = new URL(rec.url, 'http://x').searchParams.get('clientId') ?? '';
    expect(normalize(ws.messages, normalizer(t.live, { [id]: '<sid>' }))).toEqual(
      normalize(rec.messages, normalizer(t.live, { [recId]: '<sid>' })),
    );
    await ws.close();
  });
});
