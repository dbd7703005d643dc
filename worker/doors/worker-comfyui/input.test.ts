import { parseWorkerComfyInput } from './input';

const limits = { allowPrivateUrls: false, downloadMaxBytes: 1024, downloadTimeoutMs: 1000 };
const workflow = { '1': { class_type: 'SaveImage', inputs: {} } };

describe('worker-comfyui input', () => {
  test('workflow, images and the Comfy.org key (comfy_org_api_key wins over api_key_comfy_org)', async () => {
    const parsed = await parseWorkerComfyInput(
      {
        workflow,
        images: [{ name: 'a.png', image: 'data:image/png;base64,AAAA' }],
        comfy_org_api_key: 'k1',
        api_key_comfy_org: 'k2',
        extra: 1,
      },
      limits,
      'input',
    );
    expect(parsed.spec.workflow).toEqual(workflow);
    expect(parsed.spec.images).toEqual([{ name: 'a.png', image: 'data:image/png;base64,AAAA' }]);
    expect(parsed.secrets).toEqual({ comfyOrgApiKey: 'k1' });
    expect((await parseWorkerComfyInput({ workflow, api_key_comfy_org: 'k2' }, limits, '')).secrets).toEqual({
      comfyOrgApiKey: 'k2',
    });
    expect((await parseWorkerComfyInput({ workflow }, limits, '')).secrets).toEqual({});
  });

  test('input as JSON text', async () => {
    const parsed = await parseWorkerComfyInput(JSON.stringify({ workflow }), limits, 'input');
    expect(parsed.spec.workflow).toEqual(workflow);
  });

  test.each([
    [undefined, 'input', 'input: Please provide input'],
    ['{nope', 'input', 'input: Invalid JSON format in input'],
    [{}, 'input', "input.workflow: Missing 'workflow' parameter"],
    [{}, '', "workflow: Missing 'workflow' parameter"],
    [{ workflow, images: {} }, '', "images: 'images' must be a list of objects with 'name' and 'image' keys"],
    [
      { workflow, images: [{ name: 'a' }] },
      'input',
      "input.images[0]: 'images' must be a list of objects with 'name' and 'image' keys",
    ],
    [{ workflow, images: [{ name: '../a', image: 'AAAA' }] }, 'input', 'input.images[0].name: "../a" is not a plain file name'],
    [{ workflow, comfy_org_api_key: 1 }, 'input', 'input.comfy_org_api_key: must be a string'],
  ])('%j at "%s" → %s', async (input, field, message) => {
    await expect(parseWorkerComfyInput(input, limits, field)).rejects.toMatchObject({ status: 400, message });
  });
});
