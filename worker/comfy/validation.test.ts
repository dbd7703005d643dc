import { trace } from '../../test/support/traces';
import { describeValidationError } from './validation';

type Case = { status: number; body: Record<string, unknown> | string };
const cases = trace<Record<string, Case>>('prompt_invalid_responses.json');

describe('describeValidationError on the recorded 400 bodies', () => {
  test.each(Object.entries(cases).filter(([, c]) => c.status === 400))('%s names the node and the problem', (_name, c) => {
    const body = c.body as Record<string, unknown>;
    const message = describeValidationError(body);
    expect(message.startsWith('ComfyUI rejected the workflow: ')).toBe(true);
    for (const [nodeId, entry] of Object.entries(body.node_errors as Record<string, { class_type: string }>)) {
      expect(message).toContain(`Node ${nodeId} (${entry.class_type})`);
    }
  });

  test('unknown node class is named', () => {
    expect(describeValidationError(cases.unknown_class_type!.body as Record<string, unknown>)).toContain(
      'node NoSuchNode does not exist',
    );
  });

  test('a missing model lists the installed ones', () => {
    const body = {
      error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '' },
      node_errors: {
        '4': {
          class_type: 'CheckpointLoaderSimple',
          errors: [
            {
              type: 'value_not_in_list',
              message: 'Value not in list',
              details: "ckpt_name: 'sdxl.safetensors' not in ['a.safetensors', 'b.safetensors']",
              extra_info: {
                input_name: 'ckpt_name',
                input_config: [['a.safetensors', 'b.safetensors'], {}],
                received_value: 'sdxl.safetensors',
              },
            },
          ],
        },
      },
    };
    expect(describeValidationError(body)).toContain('(available: a.safetensors, b.safetensors)');
    body.node_errors['4'].errors[0]!.extra_info.input_config = [[], {}];
    expect(describeValidationError(body)).toContain('no ckpt_name values are available');
  });

  test('value_not_in_list on a non-model input gets no hint', () => {
    expect(describeValidationError(cases.value_not_in_list!.body as Record<string, unknown>)).not.toContain('available');
  });
});
