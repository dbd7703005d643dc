// The worker-comfyui job input (github.com/runpod-workers/worker-comfyui): RunPod clients send it
// as `{"input": {...}}`, the standalone HTTP API's seed sends the same fields at the top level.
//   {workflow, images?: [{name, image}], comfy_org_api_key? | api_key_comfy_org?,
//    callback_url?, s3?, webhook?, return_outputs_as_base64?, include_temp_outputs?, allow_partial_results?}
// plus RunPod's top-level `webhook` URL beside `input`. Parsed here into a JobSpec and the
// request's credentials, in one place, for the HTTP and RunPod doors. Unknown keys are ignored,
// as worker-comfyui does. Every mistake is a 400 naming the field.
import { SpooledImage, checkInputImages, type InputImage, type InputLimits } from '../../comfy/inputs';
import { parseDelivery, type DeliveryContext } from '../delivery-options';
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
    // An image decoded while the body was read is a SpooledImage (never something a client can send).
    if (
      !isObject(item) ||
      typeof item.name !== 'string' ||
      !(typeof item.image === 'string' || item.image instanceof SpooledImage)
    ) {
      throw invalidField(`${field}[${index}]`, IMAGES_SHAPE);
    }
    return { name: item.name, image: item.image };
  });
}

function optionalFlag(input: Record<string, unknown>, key: string, field: string): boolean {
  const value = input[key];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw invalidField(at(field, key), 'must be true or false');
  return value;
}

function optionalString(input: Record<string, unknown>, key: string, field: string): string | undefined {
  const value = input[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalidField(at(field, key), 'must be a string');
  return value;
}

export interface WorkerComfyContext {
  inputs: InputLimits;
  delivery: DeliveryContext;
}

/**
 * @param field where the fields sit, for error messages: 'input' for `{"input": {...}}`, '' for
 *   the seed's top-level form
 * @param webhookUrl RunPod's top-level `webhook` (a URL string beside `input`), if any
 */
export async function parseWorkerComfyInput(
  input: unknown,
  ctx: WorkerComfyContext,
  field: string,
  webhookUrl?: unknown,
): Promise<WorkerComfyJob> {
  const raw = inputObject(input, field);
  if (raw.workflow === undefined || raw.workflow === null)
    throw invalidField(at(field, 'workflow'), "Missing 'workflow' parameter");
  const workflow = parseWorkflow(raw.workflow, at(field, 'workflow'));
  const images = parseImages(raw.images, at(field, 'images'));
  await checkInputImages(images, at(field, 'images'), ctx.inputs);
  // A webhook object (api-wrapper form) wins over a bare callback URL; RunPod's top-level
  // `webhook` is used when neither is given.
  const callback = raw.callback_url ?? webhookUrl;
  const delivery = await parseDelivery(
    {
      s3: { value: raw.s3, field: at(field, 's3') },
      webhook: { value: raw.webhook, field: at(field, 'webhook') },
      webhookUrl: { value: callback, field: raw.callback_url !== undefined ? at(field, 'callback_url') : 'webhook' },
    },
    ctx.delivery,
  );

  const spec: JobSpec = {
    workflow,
    images,
    includeTempOutputs: optionalFlag(raw, 'include_temp_outputs', field),
    forceBase64: optionalFlag(raw, 'return_outputs_as_base64', field),
    includeComfyResponse: false,
    allowPartial: optionalFlag(raw, 'allow_partial_results', field),
  };
  if (delivery.s3) spec.s3 = delivery.s3;
  if (delivery.webhook) spec.webhook = delivery.webhook;
  const secrets: JobSecrets = { ...delivery.secrets };
  // Both spellings are documented; comfy_org_api_key wins when both are sent.
  const apiKey = optionalString(raw, 'comfy_org_api_key', field) ?? optionalString(raw, 'api_key_comfy_org', field);
  if (apiKey !== undefined) secrets.comfyOrgApiKey = apiKey;
  return { spec, secrets };
}
