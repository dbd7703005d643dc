import { historyEntry } from '../../test/support/traces';
import { classifyOutcome, collectOutputs, withoutSecrets } from './history';
import type { HistoryEntry } from './types';

describe('classifyOutcome on recorded history entries', () => {
  test('success', () => {
    expect(classifyOutcome(historyEntry<HistoryEntry>('history_success.json'))).toEqual({ kind: 'success' });
  });

  test('a fully cached rerun is a success', () => {
    expect(classifyOutcome(historyEntry<HistoryEntry>('history_cached_rerun.json')).kind).toBe('success');
  });

  test('runtime error names node, type, exception type and message', () => {
    const outcome = classifyOutcome(historyEntry<HistoryEntry>('history_runtime_error_imageblend.json'));
    expect(outcome.kind).toBe('error');
    if (outcome.kind !== 'error') return;
    expect(outcome.error.status).toBe(500);
    expect(outcome.error.code).toBe('execution_error');
    expect(outcome.error.message).toContain('Node 3 (ImageBlend) raised RuntimeError');
    expect(outcome.error.message).toContain('The size of tensor a (2) must match the size of tensor b (3)');
    expect(outcome.error.details).toMatchObject({ node_id: '3', node_type: 'ImageBlend', exception_type: 'RuntimeError' });
    expect(JSON.stringify(outcome.error.details)).not.toContain('current_inputs');
  });

  test('SaveImage path escape error', () => {
    const outcome = classifyOutcome(historyEntry<HistoryEntry>('history_runtime_error_saveimage.json'));
    expect(outcome.kind === 'error' && outcome.error.message).toContain('Node 3 (SaveImage) raised Exception');
  });

  test('interrupt is told apart from an error by the last message only', () => {
    const entry = historyEntry<HistoryEntry>('history_interrupted.json');
    expect(entry.status?.status_str).toBe('error');
    expect(classifyOutcome(entry)).toEqual({ kind: 'interrupted', nodeId: '3' });
  });

  test('a null status with outputs counts as success; without, as an error', () => {
    expect(classifyOutcome({ status: null, outputs: {} }).kind).toBe('success');
    expect(classifyOutcome({ status: { status_str: 'error', messages: [] } }).kind).toBe('error');
  });
});

describe('collectOutputs', () => {
  test('recorded success: one SaveImage output with its subfolder and type', () => {
    const { files, values } = collectOutputs(historyEntry<HistoryEntry>('history_success.json'), false);
    expect(files).toEqual([{ nodeId: '4', kind: 'images', filename: 'trace_success_00001_.png', subfolder: '', type: 'output' }]);
    expect(values).toEqual([]);
  });

  test('walks every key: animated flags skipped, gifs/audio/unknown kept, text as values, temp only on request', () => {
    const entry: HistoryEntry = {
      outputs: {
        '9': {
          images: [{ filename: 'clip_00001_.webp', subfolder: 'vid', type: 'output' }],
          animated: [true],
        },
        '10': { gifs: [{ filename: 'a.mp4', subfolder: '', type: 'output', format: 'video/h264-mp4', fullpath: '/x/a.mp4' }] },
        '11': { audio: [{ filename: 'voice.flac', subfolder: 'audio', type: 'output' }] },
        '12': { text: ['hello', 'world'] },
        '13': { images: [{ filename: 'ComfyUI_temp_abcde_00001_.png', subfolder: '', type: 'temp' }] },
        '14': { '3d': [{ filename: 'mesh.glb', subfolder: '3d', type: 'output' }], note: 'not a list' },
        '15': { images: [{ filename: 'in.png', subfolder: '', type: 'input' }, { nofilename: true }] },
      },
    };
    const { files, values } = collectOutputs(entry, false);
    expect(files.map((f) => `${f.nodeId}:${f.kind}:${f.subfolder}/${f.filename}`)).toEqual([
      '9:images:vid/clip_00001_.webp',
      '10:gifs:/a.mp4',
      '11:audio:audio/voice.flac',
      '14:3d:3d/mesh.glb',
    ]);
    expect(values).toEqual([
      { nodeId: '12', kind: 'text', value: 'hello' },
      { nodeId: '12', kind: 'text', value: 'world' },
    ]);
    const withTemp = collectOutputs(entry, true).files.map((f) => f.filename);
    expect(withTemp).toContain('ComfyUI_temp_abcde_00001_.png');
  });

  test('the same file listed under two keys is delivered once', () => {
    const item = { filename: 'x.png', subfolder: '', type: 'output' };
    const { files } = collectOutputs({ outputs: { '1': { images: [item], files: [item] } } }, false);
    expect(files).toHaveLength(1);
  });
});

test('withoutSecrets drops the Comfy.org key and token that older servers echo in extra_data', () => {
  const entry = historyEntry<HistoryEntry>('history_success.json');
  const prompt = [...(entry.prompt as unknown[])];
  prompt[3] = { client_id: 'c', api_key_comfy_org: 'sk-secret', auth_token_comfy_org: 'tok' };
  const safe = withoutSecrets({ ...entry, prompt });
  expect(safe.prompt?.[3]).toEqual({ client_id: 'c' });
  expect(JSON.stringify(safe)).not.toMatch(/sk-secret|tok"/);
  expect(safe.outputs).toEqual(entry.outputs);
  expect(prompt[3]).toHaveProperty('api_key_comfy_org'); // the input is not changed
});
