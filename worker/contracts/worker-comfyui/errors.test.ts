import { trace } from '../../../test/support/traces';
import { invalidField, WorkerError } from '../../errors';
import { NO_CHECKPOINTS, renderWorkerComfyError, validationMessage } from './errors';

type Recorded = Record<string, { body: Record<string, unknown> }>;
const recorded = trace<Recorded>('prompt_invalid_responses.json');

/** The recorded value_not_in_list body, with the failing input turned into ckpt_name. */
function missingCheckpoint(available: string[]): Record<string, unknown> {
  return {
    error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} },
    node_errors: {
      '4': {
        errors: [
          {
            type: 'value_not_in_list',
            message: 'Value not in list',
            details: `ckpt_name: 'sdxl.safetensors' not in [${available.map((a) => `'${a}'`).join(', ')}]`,
            extra_info: { input_name: 'ckpt_name', input_config: [available, {}], received_value: 'sdxl.safetensors' },
          },
        ],
        dependent_outputs: ['9'],
        class_type: 'CheckpointLoaderSimple',
      },
    },
  };
}

describe("worker-comfyui's error strings", () => {
  test.each([
    [invalidField('input', 'Please provide input'), { error: 'Please provide input' }],
    [invalidField('input', 'Invalid JSON format in input'), { error: 'Invalid JSON format in input' }],
    [invalidField('input.workflow', "Missing 'workflow' parameter"), { error: "Missing 'workflow' parameter" }],
    [
      invalidField('input.images[0]', "'images' must be a list of objects with 'name' and 'image' keys"),
      { error: "'images' must be a list of objects with 'name' and 'image' keys" },
    ],
    [
      invalidField('input.images[1].image', 'image "b.png" is not valid base64, a data URI or an http(s) URL'),
      {
        error: 'Failed to upload one or more input images',
        details: ['Error decoding base64 for b.png: image "b.png" is not valid base64, a data URI or an http(s) URL'],
      },
    ],
    [
      new WorkerError(400, 'input_image', 'Input image "c.png" could not be downloaded: HTTP 404', {
        field: 'images',
        details: { name: 'c.png' },
      }),
      {
        error: 'Failed to upload one or more input images',
        details: ['Error uploading c.png: Input image "c.png" could not be downloaded: HTTP 404'],
      },
    ],
    [invalidField('input.s3', 'must be an object'), { error: 'input.s3: must be an object' }],
  ])('%s', (error, rendered) => {
    expect(renderWorkerComfyError(error.toBody())).toEqual(rendered);
  });

  test('a recorded ComfyUI 400: one "• Node {id} ({type}): {message}" line per node error; the body kept in details', () => {
    const body = recorded.value_not_in_list!.body;
    const error = new WorkerError(400, 'comfy_validation', 'x', { details: body }).toBody();
    expect(renderWorkerComfyError(error)).toEqual({
      error:
        'Workflow validation failed:\n' +
        "• Node 2 (ImageScale): Value not in list: upscale_method: 'bogus' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']",
      details: body,
    });
    const missing = recorded.missing_required_input!.body;
    expect(validationMessage(missing)).toBe(
      'Workflow validation failed:\n• Node 2 (SaveImage): Required input is missing: images',
    );
  });

  test('a recorded 400 without node errors falls back to the raw response, as worker-comfyui does', () => {
    const body = recorded.unknown_class_type!.body;
    expect(validationMessage(body)).toBe(
      `Cannot execute because node NoSuchNode does not exist.. Raw response: ${JSON.stringify(body)}`,
    );
  });

  test('a missing checkpoint lists the installed ones, or says there are none', () => {
    expect(validationMessage(missingCheckpoint(['a.safetensors', 'b.ckpt']))).toBe(
      'Workflow validation failed:\n' +
        "• Node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'sdxl.safetensors' not in ['a.safetensors', 'b.ckpt']\n\n" +
        'Available checkpoint models: a.safetensors, b.ckpt',
    );
    expect(validationMessage(missingCheckpoint([]))).toMatch(new RegExp(`\n\n${NO_CHECKPOINTS.replace('.', '\\.')}$`));
  });
});
