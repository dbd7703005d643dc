import { parseWorkerComfyInput } from './input';

const limits = {
  inputs: { allowPrivateUrls: false, downloadMaxBytes: 1024, downloadTimeoutMs: 1000 },
  delivery: { s3Defaults: {}, defaultWebhookUrl: undefined, allowPrivateUrls: false },
};
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
    [{ workflow, callback_url: 'ftp://x/y' }, 'input', 'input.callback_url: must be an http or https URL, not ftp'],
    [{ workflow, callback_url: 'http://10.0.0.1/cb' }, 'input', 'input.callback_url: points to a private'],
    [{ workflow, s3: 'bucket' }, 'input', 'input.s3: must be an object'],
    [{ workflow, return_outputs_as_base64: 'yes' }, 'input', 'input.return_outputs_as_base64: must be true or false'],
  ])('%j at "%s" → %s', async (input, field, message) => {
    await expect(parseWorkerComfyInput(input, limits, field)).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining(message),
    });
  });

  test("webhooks: callback_url, RunPod's top-level webhook, a webhook object; flags", async () => {
    const hook = 'https://8.8.8.8/hook';
    const viaCallback = await parseWorkerComfyInput({ workflow, callback_url: hook }, limits, 'input');
    expect(viaCallback.spec.webhook).toEqual({ url: hook, extraParams: {}, signed: true });
    const viaTopLevel = await parseWorkerComfyInput({ workflow }, limits, 'input', hook);
    expect(viaTopLevel.spec.webhook?.url).toBe(hook);
    const viaObject = await parseWorkerComfyInput(
      { workflow, webhook: { url: hook, secret: 'sh', extra_params: { a: 1 } }, callback_url: 'https://1.1.1.1/x' },
      limits,
      'input',
    );
    expect(viaObject.spec.webhook).toEqual({ url: hook, extraParams: { a: 1 }, signed: true });
    expect(viaObject.secrets.webhookSecret).toBe('sh');
    const flags = await parseWorkerComfyInput(
      { workflow, return_outputs_as_base64: true, include_temp_outputs: true, allow_partial_results: true },
      limits,
      '',
    );
    expect(flags.spec).toMatchObject({ forceBase64: true, includeTempOutputs: true, allowPartial: true });
    expect((await parseWorkerComfyInput({ workflow }, limits, '')).spec.webhook).toBeUndefined();
  });
});
