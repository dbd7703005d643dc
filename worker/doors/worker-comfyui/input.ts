// The worker-comfyui job input (github.com/runpod-workers/worker-comfyui): RunPod clients send it
// as `{"input": {...}}`, the standalone HTTP API's seed sends the same fields at the top level.
//   {workflow, images?: [{name, image}], comfy_org_api_key? | api_key_comfy_org?}
// Parsed here into a JobSpec and the request's credentials, in one place, so later fields
// (callback_url, s3 settings) are added once for the HTTP and RunPod doors. Unknown keys are
// ignored, as worker-comfyui does. Every mistake is a 400 naming the field.
import { checkInputImages, type InputImage, type InputLimits } from '../../comfy/inputs';
import { parseWorkflow } from '../../comfy/workflow';
import { invalidField } from '../../errors';
import type { JobSecrets, JobSpec } from '../../jobs/types';
import { isObject } from '../../util/objects';

export interface WorkerComfyJob {
  spec: JobSpec;
  secrets: JobSecrets;
}

/** `input.workflow`, or `workflow` when the fields are at the top level (field ''). */
function at(field: string, name: string): string {
  return field === '' ? name : `${field}.${name}`;
}

/** worker-comfyui accepts the input as a JSON text too. */
function inputObject(input: unknown, field: string): Record<string, unknown> {
  const where = field === '' ? 'body' : field;
  if (input === undefined || input === null) throw invalidField(where, 'Please provide input');
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input) as unknown;
    } catch {
      throw invalidField(where, 'Invalid JSON format in input');
    }
  }
  if (!isObject(value)) throw invalidField(where, 'must be a JSON object with a "workflow"');
  return value;
}

const IMAGES_SHAPE = "'images' must be a list of objects with 'name' and 'image' keys";

function parseImages(value: unknown, field: string): InputImage[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidField(field, IMAGES_SHAPE);
  return value.map((item: unknown, index) => {
    if (!isObject(item) || typeof item.name !== 'string' || typeof item.image !== 'string') {
      throw invalidField(`${field}[${index}]`, IMAGES_SHAPE);
    }
    return { name: item.name, image: item.image };
  });
}

function optionalString(input: Record<string, unknown>, key: string, field: string): string | undefined {
  const value = input[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalidField(at(field, key), 'must be a string');
  return value;
}

/**
 * @param field where the fields sit, for error messages: 'input' for `{"input": {...}}`, '' for
 *   the seed's top-level form
 */
export async function parseWorkerComfyInput(input: unknown, limits: InputLimits, field: string): Promise<WorkerComfyJob> {
  const raw = inputObject(input, field);
  if (raw.workflow === undefined || raw.workflow === null)
    throw invalidField(at(field, 'workflow'), "Missing 'workflow' parameter");
  const workflow = parseWorkflow(raw.workflow, at(field, 'workflow'));
  const images = parseImages(raw.images, at(field, 'images'));
  await checkInputImages(images, at(field, 'images'), limits);

  const spec: JobSpec = {
    workflow,
    images,
    includeTempOutputs: false,
    forceBase64: false,
    includeComfyResponse: false,
    allowPartial: false,
  };
  const secrets: JobSecrets = {};
  // Both spellings are documented; comfy_org_api_key wins when both are sent.
  const apiKey = optionalString(raw, 'comfy_org_api_key', field) ?? optionalString(raw, 'api_key_comfy_org', field);
  if (apiKey !== undefined) secrets.comfyOrgApiKey = apiKey;
  return { spec, secrets };
}
