import { ModifierRegistry } from './modifiers';
import type { WorkerError } from '../../errors';
import { parseWrapperRequest, replaceRandomInts, type WrapperContext } from './request';

const ctx: WrapperContext = {
  modifiers: ModifierRegistry.load(),
  inputs: { allowPrivateUrls: false, downloadMaxBytes: 1024, downloadTimeoutMs: 1000 },
  delivery: { s3Defaults: {}, defaultWebhookUrl: undefined, allowPrivateUrls: false },
  includeComfyResponse: false,
};
const workflow = {
  '1': { class_type: 'EmptyImage', inputs: { width: 8 } },
  '2': { class_type: 'SaveImage', inputs: { images: ['1', 0] } },
};
const PNG_1PX = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

async function rejection(body: unknown): Promise<WorkerError> {
  try {
    await parseWrapperRequest(body, ctx);
  } catch (err) {
    return err as WorkerError;
  }
  throw new Error('expected a rejection');
}

describe('parseWrapperRequest: the wrapper validation rules', () => {
  test.each([
    ['not an object', 'text', 'body', 'must be a JSON object'],
    ['no input', {}, 'input', 'input: is required'],
    ['input not an object', { input: [] }, 'input', 'input: must be an object'],
    [
      'both',
      { input: { workflow_json: workflow, modifier: 'Text2Image' } },
      'input.workflow_json',
      'Cannot provide both workflow_json and modifier - they are mutually exclusive',
    ],
    ['neither', { input: { request_id: 'x' } }, 'input.workflow_json', 'Must provide either workflow_json OR modifier'],
    [
      'empty workflow and modifier count as neither',
      { input: { workflow_json: {}, modifier: '' } },
      'input.workflow_json',
      'Must provide either workflow_json OR modifier',
    ],
    [
      'modifications without modifier',
      { input: { workflow_json: workflow, modifications: { seed: 1 } } },
      'input.modifications',
      'modifications can only be provided when modifier is specified',
    ],
    ['non-object workflow', { input: { workflow_json: 'graph' } }, 'input.workflow_json', 'must be a JSON object'],
    ['UI-format workflow', { input: { workflow_json: { nodes: [], links: [] } } }, 'input.workflow_json', 'Export (API)'],
    ['node not an object', { input: { workflow_json: { '1': 5 } } }, 'input.workflow_json.1', 'must be an object'],
    [
      'unknown modifier',
      { input: { modifier: 'Upscale' } },
      'input.modifier',
      'Unknown modifier: Upscale (known: Image2Image, Text2Image)',
    ],
    [
      'RawWorkflow without workflow',
      { input: { modifier: 'RawWorkflow', modifications: {} } },
      'input.workflow_json',
      'RawWorkflow runs workflow_json, which is missing',
    ],
    ['bad images', { input: { workflow_json: workflow, images: 'x' } }, 'input.images', 'must be a list'],
    ['image without name', { input: { workflow_json: workflow, images: [{ image: PNG_1PX }] } }, 'input.images[0].name', ''],
    [
      'bad base64',
      { input: { workflow_json: workflow, images: [{ name: 'a.png', image: 'not base64!!' }] } },
      'input.images[0].image',
      'image "a.png" is not valid base64',
    ],
    [
      'private image URL',
      { input: { workflow_json: workflow, images: [{ name: 'a.png', image: 'http://169.254.169.254/a.png' }] } },
      'input.images[0].image',
      'private',
    ],
    [
      'path in image name',
      { input: { workflow_json: workflow, images: [{ name: '../a.png', image: PNG_1PX }] } },
      'input.images[0].name',
      'not a plain file name',
    ],
    ['bad request_id', { input: { request_id: 'a b', workflow_json: workflow } }, 'input.request_id', 'must be 1-128'],
    [
      'bad flag type',
      { input: { workflow_json: workflow, return_outputs_as_base64: 'yes' } },
      'input.return_outputs_as_base64',
      'must be true or false',
    ],
  ])('%s → 400 naming the field', async (_name, body, field, message) => {
    const err = await rejection(body);
    expect(err.status).toBe(400);
    expect(err.field).toBe(field);
    expect(err.message).toContain(message);
  });
});

describe('parseWrapperRequest: accepted requests', () => {
  test('workflow mode; request_id minted when absent or empty', async () => {
    const a = await parseWrapperRequest({ input: { workflow_json: workflow } }, ctx);
    const b = await parseWrapperRequest({ input: { request_id: '', workflow_json: workflow } }, ctx);
    expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.id).not.toBe(a.id);
    expect(a.spec.workflow['2']!.class_type).toBe('SaveImage');
    expect(a.spec).toMatchObject({ forceBase64: false, includeTempOutputs: false, allowPartial: false, images: [] });
  });

  test('modifier with empty workflow_json (the 2025 Vast client) and RawWorkflow with workflow_json', async () => {
    const a = await parseWrapperRequest(
      { input: { request_id: 'r1', modifier: 'Text2Image', modifications: { prompt: 'cat' }, workflow_json: {} } },
      ctx,
    );
    expect(a.id).toBe('r1');
    expect(a.spec.workflow['6']!.inputs.text).toBe('cat');
    const b = await parseWrapperRequest({ input: { modifier: 'RawWorkflow', workflow_json: workflow, modifications: {} } }, ctx);
    expect(b.spec.workflow).toEqual(workflow);
  });

  test('__RANDOM_INT__ in a modification and in a workflow become integers', async () => {
    const a = await parseWrapperRequest({ input: { modifier: 'Text2Image', modifications: { seed: '__RANDOM_INT__' } } }, ctx);
    expect(Number.isInteger(a.spec.workflow['3']!.inputs.seed)).toBe(true);
    const wf = replaceRandomInts({
      '1': { class_type: 'X', inputs: { seed: '__RANDOM_INT__', name: 'img___RANDOM_INT___x', list: ['__RANDOM_INT__'] } },
    });
    const inputs = wf['1']!.inputs;
    expect(typeof inputs.seed).toBe('number');
    expect(inputs.seed as number).toBeLessThan(2 ** 32);
    expect(inputs.name).toMatch(/^img_\d+_x$/);
    expect(typeof (inputs.list as unknown[])[0]).toBe('number');
  });

  test('a URL inside the workflow becomes an input image referenced by file name', async () => {
    const a = await parseWrapperRequest(
      { input: { modifier: 'Image2Image', modifications: { input_image: 'https://8.8.8.8/photos/cat.jpg?x=1' } } },
      ctx,
    );
    const name = a.spec.workflow['10']!.inputs.image as string;
    expect(name).toMatch(/^url_[0-9a-f]{32}\.jpg$/);
    expect(a.spec.images).toEqual([{ name, image: 'https://8.8.8.8/photos/cat.jpg?x=1' }]);
  });

  test('a refused URL is named where the client wrote it: modifications.input_image, or the workflow input', async () => {
    const fromModifier = await rejection({
      input: { modifier: 'Image2Image', modifications: { input_image: 'http://127.0.0.1/cat.png' } },
    });
    expect(fromModifier.field).toBe('input.modifications.input_image');
    expect(fromModifier.message).toMatch(/^input\.modifications\.input_image: /);
    const fromWorkflow = await rejection({
      input: { workflow_json: { ...workflow, '3': { class_type: 'LoadImage', inputs: { image: 'http://10.0.0.1/a.png' } } } },
    });
    expect(fromWorkflow.field).toBe('input.workflow_json.3.inputs.image');
    // An images entry is still named as such.
    const fromImages = await rejection({
      input: { workflow_json: workflow, images: [{ name: 'a.png', image: 'http://127.0.0.1/a.png' }] },
    });
    expect(fromImages.field).toBe('input.images[0].image');
  });

  test('flags, header flags and the Comfy.org key (comfy_org_api_key wins)', async () => {
    const a = await parseWrapperRequest(
      { input: { workflow_json: workflow, include_temp_outputs: true, api_key_comfy_org: 'k1', comfy_org_api_key: 'k2' } },
      ctx,
      { 'x-return-outputs-as-base64': 'Yes', 'x-include-comfyui-response': '1' },
    );
    expect(a.spec).toMatchObject({ includeTempOutputs: true, forceBase64: true, includeComfyResponse: true });
    expect(a.secrets).toEqual({ comfyOrgApiKey: 'k2' });
    expect(JSON.stringify(a.spec)).not.toContain('k2');
  });

  test('data URI and base64 images are accepted', async () => {
    const a = await parseWrapperRequest(
      {
        input: {
          workflow_json: workflow,
          images: [
            { name: 'a.png', image: PNG_1PX },
            { name: 'b.png', image: `data:image/png;base64,${PNG_1PX}` },
          ],
        },
      },
      ctx,
    );
    expect(a.spec.images).toHaveLength(2);
  });
});
