// The request body of the ai-dock comfyui-api-wrapper contract, which Vast clients send:
// `{"input": {request_id?, workflow_json | modifier + modifications, images?, s3?, webhook?, ...}}`.
// Parsed into a JobSpec; every client mistake is a 400 naming the field. Used by the HTTP door
// and, inside the signed envelope, by the Vast door.
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { SpooledImage, checkInputImages, type InputImage } from '../../comfy/inputs';
import type { Workflow } from '../../comfy/types';
import { WORKFLOW_SCHEMA_REF, parseWorkflow } from '../../comfy/workflow';
import { invalidField } from '../../errors';
import { assertPublicHttpUrl } from '../../net/address-guard';
import type { JobSecrets, JobSpec } from '../../jobs/types';
import { isObject } from '../../util/objects';
import { parseBoolWord } from '../../util/words';
import type { ContractContext } from '../context';
import { parseDelivery, s3Schema, webhookSchema } from '../delivery-options';
import { RANDOM_INT } from './modifiers';

/** `RawWorkflow` (older ai-dock clients) means "run workflow_json as it is". */
export const RAW_WORKFLOW = 'RawWorkflow';
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export type WrapperContext = ContractContext;

export interface ParsedRequest {
  id: string;
  spec: JobSpec;
  secrets: JobSecrets;
}

const imageSchema = z.object(
  {
    name: z.string().meta({ description: 'The file name the workflow refers to (e.g. in LoadImage)' }),
    // Text, or the bytes decoded while the body was read (never something a client can send).
    image: z.union([z.string(), z.instanceof(SpooledImage)], { error: 'must be a string' }).meta({
      description: 'base64, a data URI or an http(s) URL',
    }),
  },
  { error: 'must be an object {name, image}' },
);

/** `input` of the wrapper's request; `s3` and `webhook` are checked by parseDelivery. */
export const wrapperInputSchema = z.object({
  request_id: z
    .string({ error: 'must be a string' })
    .optional()
    .meta({ description: 'Minted when absent; 1-128 letters, digits, ".", "_", ":" or "-"' }),
  modifier: z
    .string({ error: 'must be a string' })
    .optional()
    .meta({ description: 'A template name (Text2Image, Image2Image, or RawWorkflow to run workflow_json)' }),
  modifications: z
    .record(z.string(), z.unknown(), { error: 'must be an object' })
    .optional()
    .meta({ description: "The modifier's keys; __RANDOM_INT__ becomes a random integer" }),
  workflow_json: z.unknown().optional().meta({
    $ref: WORKFLOW_SCHEMA_REF,
    description: 'An API-format workflow; exactly one of workflow_json and modifier (empty counts as absent)',
  }),
  images: z.array(imageSchema, { error: 'must be a list of {name, image} objects' }).optional(),
  return_outputs_as_base64: z.boolean({ error: 'must be true or false' }).optional(),
  include_temp_outputs: z.boolean({ error: 'must be true or false' }).optional(),
  allow_partial_results: z.boolean({ error: 'must be true or false' }).optional(),
  api_key_comfy_org: z.string({ error: 'must be a string' }).optional(),
  comfy_org_api_key: z.string({ error: 'must be a string' }).optional(),
});

/** The whole body as the API description shows it (the parser checks s3 and webhook with these). */
export const wrapperRequestSchema = z.object({
  input: wrapperInputSchema.extend({ s3: s3Schema.optional(), webhook: webhookSchema.optional() }),
});

/** Empty strings and empty objects count as "not provided" (the wrapper's rule). */
function provided(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (isObject(value)) return Object.keys(value).length > 0;
  return true;
}

/** A yes/no request header (the wrapper's X-Return-Outputs-As-Base64 ...): absent is no. */
export function headerFlag(value: string | string[] | undefined): boolean {
  const first = Array.isArray(value) ? value[0] : value;
  return first !== undefined && parseBoolWord(first) === true;
}

export async function parseWrapperRequest(
  body: unknown,
  ctx: WrapperContext,
  headers: Record<string, string | string[] | undefined> = {},
  field = 'input',
): Promise<ParsedRequest> {
  if (!isObject(body)) throw invalidField('body', 'must be a JSON object with an "input" object');
  if (!('input' in body)) throw invalidField(field, 'is required');
  const raw = body.input;
  if (!isObject(raw)) throw invalidField(field, 'must be an object');
  const parsed = wrapperInputSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = [field, ...(issue?.path ?? []).map(String)].join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
    throw invalidField(at, issue?.message ?? 'is invalid');
  }
  const input = parsed.data;

  const id = provided(input.request_id) ? (input.request_id as string) : randomUUID();
  if (!REQUEST_ID.test(id)) {
    throw invalidField(`${field}.request_id`, 'must be 1-128 letters, digits, ".", "_", ":" or "-"');
  }

  const workflow = buildWorkflow(input, ctx, field);
  const images: InputImage[] = [...(input.images ?? [])];
  await checkInputImages(images, `${field}.images`, ctx.inputs);
  const { workflow: withUrls, found } = extractUrlInputs(replaceRandomInts(workflow), images);
  // A URL found in the workflow is refused under the field the client wrote it in, not under
  // the `images` entry it became.
  for (const { url, node, input: name } of found) {
    const key = provided(input.modifier) ? ctx.modifiers.keyFor(input.modifier as string, node, name) : undefined;
    const where =
      key !== undefined
        ? `${field}.modifications.${key}`
        : provided(input.workflow_json)
          ? `${field}.workflow_json.${node}.inputs.${name}`
          : `${field}.modifier`;
    await assertPublicHttpUrl(url, where, { allowPrivate: ctx.inputs.allowPrivateUrls });
  }

  const delivery = await parseDelivery(
    { s3: { value: raw.s3, field: `${field}.s3` }, webhook: { value: raw.webhook, field: `${field}.webhook` } },
    ctx.delivery,
  );

  const spec: JobSpec = {
    workflow: withUrls,
    images,
    includeTempOutputs: input.include_temp_outputs ?? false,
    forceBase64: (input.return_outputs_as_base64 ?? false) || headerFlag(headers['x-return-outputs-as-base64']),
    includeComfyResponse: ctx.includeComfyResponse || headerFlag(headers['x-include-comfyui-response']),
    allowPartial: input.allow_partial_results ?? false,
  };
  if (delivery.s3) spec.s3 = delivery.s3;
  if (delivery.webhook) spec.webhook = delivery.webhook;
  const secrets: JobSecrets = { ...delivery.secrets };
  // Both spellings are documented; comfy_org_api_key wins when both are sent.
  const apiKey = input.comfy_org_api_key ?? input.api_key_comfy_org;
  if (provided(apiKey)) secrets.comfyOrgApiKey = apiKey;
  return { id, spec, secrets };
}

function buildWorkflow(input: z.infer<typeof wrapperInputSchema>, ctx: WrapperContext, field: string): Workflow {
  const hasWorkflow = provided(input.workflow_json);
  const hasModifier = provided(input.modifier);
  const raw = hasModifier && input.modifier === RAW_WORKFLOW;
  if (hasWorkflow && hasModifier && !raw) {
    throw invalidField(`${field}.workflow_json`, 'Cannot provide both workflow_json and modifier - they are mutually exclusive');
  }
  if (!hasWorkflow && !hasModifier) {
    throw invalidField(`${field}.workflow_json`, 'Must provide either workflow_json OR modifier');
  }
  if (provided(input.modifications) && !hasModifier) {
    throw invalidField(`${field}.modifications`, 'modifications can only be provided when modifier is specified');
  }
  if (raw) {
    if (!hasWorkflow)
      throw invalidField(`${field}.workflow_json`, `modifier ${RAW_WORKFLOW} runs workflow_json, which is missing`);
    if (provided(input.modifications)) {
      throw invalidField(`${field}.modifications`, `modifier ${RAW_WORKFLOW} takes no modifications; edit workflow_json instead`);
    }
  }
  if (hasWorkflow) return parseWorkflow(input.workflow_json, `${field}.workflow_json`);
  return ctx.modifiers.apply(input.modifier as string, input.modifications ?? {}, `${field}.modifications`);
}

/**
 * `__RANDOM_INT__` as a whole value becomes an integer in [0, 2^32 - 1]; inside a longer string
 * each occurrence becomes decimal digits. Every occurrence gets its own value.
 */
export function replaceRandomInts(workflow: Workflow): Workflow {
  const random = () => Math.floor(Math.random() * 2 ** 32);
  const walk = (value: unknown): unknown => {
    if (value === RANDOM_INT) return random();
    if (typeof value === 'string')
      return value.includes(RANDOM_INT) ? value.split(RANDOM_INT).reduce((a, b) => `${a}${random()}${b}`) : value;
    if (Array.isArray(value)) return value.map(walk);
    if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    return value;
  };
  return walk(workflow) as Workflow;
}

/**
 * The wrapper downloads every URL it finds in a workflow's inputs (Image2Image's input_image,
 * for example). Here each http(s) URL becomes an input image (fetched and uploaded when the job
 * runs, with the same guards as `images`) and the workflow refers to it by file name.
 */
function extractUrlInputs(
  workflow: Workflow,
  images: InputImage[],
): { workflow: Workflow; found: Array<{ url: string; node: string; input: string }> } {
  const byUrl = new Map(images.map((i) => [i.image, i.name]));
  const found: Array<{ url: string; node: string; input: string }> = [];
  const out: Workflow = {};
  for (const [id, node] of Object.entries(workflow)) {
    const inputs: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(node.inputs)) {
      if (typeof value === 'string' && /^https?:\/\/[^\s]+$/i.test(value)) {
        let fileName = byUrl.get(value);
        if (fileName === undefined) {
          const ext = safeExtension(value);
          fileName = `url_${createHash('md5').update(value).digest('hex')}${/^\.[a-z0-9]{1,5}$/.test(ext) ? ext : '.png'}`;
          images.push({ name: fileName, image: value });
          byUrl.set(value, fileName);
          found.push({ url: value, node: id, input: name });
        }
        inputs[name] = fileName;
      } else inputs[name] = value;
    }
    out[id] = { ...node, inputs };
  }
  return { workflow: out, found };
}

function safeExtension(url: string): string {
  try {
    return path.extname(new URL(url).pathname).toLowerCase();
  } catch {
    return '';
  }
}
