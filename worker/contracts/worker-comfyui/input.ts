// The worker-comfyui job input (github.com/runpod-workers/worker-comfyui): RunPod clients send it
// as `{"input": {...}}`, the standalone HTTP API's seed sends the same fields at the top level.
//   {workflow, images?: [{name, image}], comfy_org_api_key? | api_key_comfy_org?,
//    callback_url?, s3?, webhook?, return_outputs_as_base64?, include_temp_outputs?, allow_partial_results?}
// plus RunPod's top-level `webhook` URL beside `input`. Parsed here into a JobSpec and the
// request's credentials, in one place, for the HTTP and RunPod doors. Unknown keys are ignored,
// as worker-comfyui does. Every mistake is a 400 naming the field.
import { SpooledImage, checkInputImages, type InputImage, type InputLimits } from '../../comfy/inputs';
import { z } from 'zod';
import { parseDelivery, s3Schema, webhookSchema, type DeliveryContext } from '../delivery-options';
import { WORKFLOW_SCHEMA_REF, parseWorkflow } from '../../comfy/workflow';
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

const flag = z.boolean({ error: 'must be true or false' }).nullish();
const text = z.string({ error: 'must be a string' }).nullish();

/**
 * The job input's fields (null counts as absent, unknown keys are ignored). `workflow` is checked
 * by parseWorkflow, `s3`, `webhook` and `callback_url` by parseDelivery (with the same schemas).
 */
export const workerComfyInputSchema = z.object({
  workflow: z.unknown().meta({ $ref: WORKFLOW_SCHEMA_REF, description: 'The workflow in API format' }),
  images: z
    .array(
      z.object({
        name: z.string().meta({ description: 'The file name the workflow refers to (e.g. in LoadImage)' }),
        // An image decoded while the body was read is a SpooledImage (never something a client can send).
        image: z.union([z.string(), z.instanceof(SpooledImage)]).meta({ description: 'base64, a data URI or an http(s) URL' }),
      }),
    )
    .nullish(),
  comfy_org_api_key: text.meta({ description: 'Comfy.org key for API nodes (never stored in clear, never answered)' }),
  api_key_comfy_org: text.meta({ description: 'The same key, the other spelling (comfy_org_api_key wins)' }),
  callback_url: z.string({ error: 'must be a URL string' }).nullish().meta({ description: 'Told of progress and of the end' }),
  s3: s3Schema.nullish(),
  webhook: webhookSchema.nullish(),
  return_outputs_as_base64: flag,
  include_temp_outputs: flag,
  allow_partial_results: flag,
});

/** The first problem of the input's fields, as a 400 in worker-comfyui's words where it has them. */
function checkFields(raw: Record<string, unknown>, field: string): z.infer<typeof workerComfyInputSchema> {
  const parsed = workerComfyInputSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const path = parsed.error.issues[0]?.path ?? [];
  const [key, index] = path;
  if (key === 'images') {
    throw invalidField(index === undefined ? at(field, 'images') : `${at(field, 'images')}[${String(index)}]`, IMAGES_SHAPE);
  }
  throw invalidField(at(field, path.map(String).join('.')), parsed.error.issues[0]?.message ?? 'is invalid');
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
  const fields = checkFields(raw, field);
  const images: InputImage[] = (fields.images ?? []).map(({ name, image }) => ({ name, image }));
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
    includeTempOutputs: fields.include_temp_outputs ?? false,
    forceBase64: fields.return_outputs_as_base64 ?? false,
    includeComfyResponse: false,
    allowPartial: fields.allow_partial_results ?? false,
  };
  if (delivery.s3) spec.s3 = delivery.s3;
  if (delivery.webhook) spec.webhook = delivery.webhook;
  const secrets: JobSecrets = { ...delivery.secrets };
  // Both spellings are documented; comfy_org_api_key wins when both are sent.
  const given = (key: string | null | undefined) => (key === null || key === '' ? undefined : key);
  const apiKey = given(fields.comfy_org_api_key) ?? given(fields.api_key_comfy_org);
  if (apiKey !== undefined) secrets.comfyOrgApiKey = apiKey;
  return { spec, secrets };
}
