// Workflows the tests send, taken from the recorded traces where one exists.
import type { Workflow } from '../../worker/comfy/types';
import type { SimNodeDef } from '../../simulator';
import { trace } from './traces';

/** The recorded success prompt: EmptyImage → ImageInvert → ImageScale → SaveImage. */
export function successWorkflow(color = 3368601): Workflow {
  const wf = structuredClone(trace<{ prompt: Workflow }>('prompt_success_request.json').prompt);
  wf['1']!.inputs.color = color;
  return wf;
}

/** A small graph with a configurable save prefix. */
export function saveWorkflow(prefix = 'test', extra: Workflow = {}): Workflow {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 48, batch_size: 1, color: 255 } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: prefix } },
    ...extra,
  };
}

export const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A custom output node for the simulator that writes a file of `size` bytes (like a video saver),
 * listed under `files` in `subfolder`.
 */
export function fileSaverNode(name: string, subfolder = ''): SimNodeDef {
  return {
    schema: {
      input: { required: { size: ['INT', { default: 1, min: 1, max: 2 ** 31 }] } },
      input_order: { required: ['size'] },
      output: [],
      output_is_list: [],
      output_name: [],
      name,
      display_name: name,
      description: '',
      python_module: 'custom_nodes.test',
      category: 'test',
      output_node: true,
    },
    run: ({ inputs, promptId, writeFile }) => {
      const filename = `bytes_${promptId.slice(0, 8)}.bin`;
      writeFile('output', subfolder, filename, Buffer.alloc(inputs.size as number, 7));
      return { ui: { files: [{ filename, subfolder, type: 'output' }] } };
    },
  };
}

/** EmptyImage → ImageScale (slow with `sim.setNodeDelay({ImageScale: ms})`) → SaveImage. */
export function slowWorkflow(prefix = 'slow'): Workflow {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: 0 } },
    '2': {
      class_type: 'ImageScale',
      inputs: { image: ['1', 0], upscale_method: 'nearest-exact', width: 32, height: 32, crop: 'disabled' },
    },
    '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: prefix } },
  };
}

/** A custom output node that raises `excType: message` when it runs (ComfyUI's exception_type). */
export function raisingNode(name: string, excType: string, message: string): SimNodeDef {
  return {
    schema: { ...fileSaverNode(name).schema, input: { required: {} }, input_order: { required: [] } },
    run: () => {
      // A custom node's error name becomes ComfyUI's exception_type.
      throw Object.assign(new Error(message), { name: excType });
    },
  };
}
