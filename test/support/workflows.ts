// Workflows the tests send, taken from the recorded traces where one exists.
import type { Workflow } from '../../worker/comfy/types';
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
