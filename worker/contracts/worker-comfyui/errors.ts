// A failed job as worker-comfyui (github.com/runpod-workers/worker-comfyui, handler.py) reports
// it: `{"error": message, "details"?: ...}`, with its own strings where its clients look for them:
//   - its validation messages bare ("Missing 'workflow' parameter", not "input.workflow: ...");
//   - an input image that cannot be decoded, fetched or uploaded: "Failed to upload one or more
//     input images" with one "Error decoding base64 for {name}: ..." / "Error uploading {name}: ..."
//     line per image in `details`;
//   - ComfyUI's 400: the error's message ("Workflow validation failed" for failed outputs), then
//     one "• Node {id} ({class_type}): {message}" line per node error, and for a missing checkpoint
//     the checkpoints that are installed (ComfyUI's own body keeps structured in `details`);
//   - a node that raised: "Job processing failed" with "Workflow execution error: Node Type: ...,
//     Node ID: ..., Message: ..." in `details`.
// Every other error keeps this worker's message (and details).
import type { ErrorBody } from '../../errors';
import { isObject } from '../../util/objects';

export interface WorkerComfyError {
  error: string;
  details?: unknown;
}

/** worker-comfyui's validation messages, which it returns without a field name. */
const BARE_MESSAGES = [
  'Please provide input',
  'Invalid JSON format in input',
  "Missing 'workflow' parameter",
  "'images' must be a list of objects with 'name' and 'image' keys",
];

export const UPLOAD_FAILED = 'Failed to upload one or more input images';
export const VALIDATION_FAILED = 'Workflow validation failed';
export const NO_CHECKPOINTS = 'No checkpoint models appear to be available. Please check your model installation.';

/** The problem without this worker's `field: ` prefix, when there is one. */
function problemOf(error: ErrorBody): string {
  const prefix = error.field !== undefined ? `${error.field}: ` : '';
  return prefix !== '' && error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

/** The image's name, quoted in this worker's messages (`image "a.png" ...`). */
function quotedName(text: string): string | undefined {
  return /"([^"]+)"/.exec(text)?.[1];
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
}

/** The checkpoint list of a `ckpt_name` value_not_in_list error (ComfyUI fills it from INPUT_TYPES). */
function checkpointChoices(item: Record<string, unknown>): string[] | undefined {
  if (!isObject(item.extra_info) || item.extra_info.input_name !== 'ckpt_name') return undefined;
  const config = item.extra_info.input_config;
  if (!Array.isArray(config)) return undefined;
  const [first, second] = config as unknown[];
  if (Array.isArray(first)) return first.map(String);
  if (first === 'COMBO' && isObject(second) && Array.isArray(second.options)) return second.options.map(String);
  return undefined;
}

/** ComfyUI's 400 body from POST /prompt, as worker-comfyui words it. */
export function validationMessage(body: Record<string, unknown>): string {
  const error = body.error;
  let header = VALIDATION_FAILED;
  if (isObject(error)) {
    header = str(error.message) || header;
    if (error.type === 'prompt_outputs_failed_validation') header = VALIDATION_FAILED;
  } else if (error !== undefined) {
    header = str(error);
  }
  const lines: string[] = [];
  let checkpoints: string[] | undefined;
  let missingCheckpoint = false;
  const nodeErrors = isObject(body.node_errors) ? body.node_errors : {};
  for (const [nodeId, entry] of Object.entries(nodeErrors)) {
    if (!isObject(entry)) {
      lines.push(`Node ${nodeId}: ${str(entry)}`);
      continue;
    }
    for (const item of Array.isArray(entry.errors) ? entry.errors : []) {
      if (!isObject(item)) continue;
      const text = [str(item.message), str(item.details)].filter((s) => s !== '').join(': ');
      lines.push(`Node ${nodeId} (${str(entry.class_type)}): ${text}`);
      if (/not in list/i.test(text) && text.includes('ckpt_name')) {
        missingCheckpoint = true;
        checkpoints ??= checkpointChoices(item);
      }
    }
  }
  if (lines.length === 0) return `${header}. Raw response: ${JSON.stringify(body)}`;
  let message = `${header}:\n${lines.map((line) => `• ${line}`).join('\n')}`;
  if (missingCheckpoint) {
    message +=
      checkpoints !== undefined && checkpoints.length > 0
        ? `\n\nAvailable checkpoint models: ${checkpoints.join(', ')}`
        : `\n\n${NO_CHECKPOINTS}`;
  }
  return message;
}

/** worker-comfyui's line for a node that raised. */
function executionLine(details: unknown): string {
  const d = isObject(details) ? details : {};
  return `Workflow execution error: Node Type: ${str(d.node_type)}, Node ID: ${str(d.node_id)}, Message: ${str(d.exception_message)}`;
}

export function renderWorkerComfyError(error: ErrorBody): WorkerComfyError {
  const field = error.field ?? '';
  if (error.code === 'invalid_request') {
    const problem = problemOf(error);
    if (BARE_MESSAGES.includes(problem)) return { error: problem };
    const image = /(^|\.)images\[(\d+)\]\.image$/.exec(field);
    if (image) {
      const name = quotedName(problem) ?? `images[${image[2]}]`;
      const decoding = /base64/.test(problem);
      return {
        error: UPLOAD_FAILED,
        details: [decoding ? `Error decoding base64 for ${name}: ${problem}` : `Error uploading ${name}: ${problem}`],
      };
    }
  }
  if (error.code === 'input_image') {
    const name = (isObject(error.details) ? str(error.details.name) : '') || quotedName(error.message) || 'image';
    return { error: UPLOAD_FAILED, details: [`Error uploading ${name}: ${error.message}`] };
  }
  if (error.code === 'comfy_validation' && isObject(error.details)) {
    return { error: validationMessage(error.details), details: error.details };
  }
  if (error.code === 'execution_error' && isObject(error.details) && 'node_id' in error.details) {
    return { error: 'Job processing failed', details: [executionLine(error.details)] };
  }
  return error.details === undefined ? { error: error.message } : { error: error.message, details: error.details };
}
