// The delivery part of a request: where outputs go (`s3`) and who is told (`webhook`, RunPod's
// top-level `webhook` URL, worker-comfyui's `callback_url`, else WEBHOOK_URL). Shared by every
// door's parser. Each mistake is a 400 naming the field; credentials go to JobSecrets only.
import { z } from 'zod';
import { invalidField } from '../errors';
import type { JobSecrets, S3Target, WebhookTarget } from '../jobs/types';
import { assertPublicHttpUrl } from '../net/address-guard';
import { isObject } from '../util/objects';
import { missingS3Settings, type S3Defaults } from '../delivery/s3';

export interface DeliveryContext {
  s3Defaults: S3Defaults;
  /** WEBHOOK_URL: used when a request names no webhook. */
  defaultWebhookUrl: string | undefined;
  allowPrivateUrls: boolean;
}

/** The raw delivery fields of a request, with the names to report them under. */
export interface DeliveryFields {
  s3?: { value: unknown; field: string };
  webhook?: { value: unknown; field: string };
  /** A bare URL (RunPod's top-level `webhook`, worker-comfyui's `callback_url`). */
  webhookUrl?: { value: unknown; field: string };
}

export interface ParsedDelivery {
  s3?: S3Target;
  webhook?: WebhookTarget;
  secrets: JobSecrets;
}

const text = z.string({ error: 'must be a string' }).optional();
/** A request's `s3` block; each field given wins over the environment's S3_* / BUCKET_* value. */
export const s3Schema = z
  .object(
    {
      access_key_id: text,
      secret_access_key: text,
      endpoint_url: text,
      bucket_name: text,
      region: text,
      prefix: text,
      connect_timeout: z.number({ error: 'must be a number' }).positive().max(3600).optional(),
      connect_attempts: z.number({ error: 'must be a number' }).int().positive().max(10).optional(),
    },
    { error: 'must be an object' },
  )
  .meta({ description: 'Upload outputs to S3; fields left out come from the environment (S3_*, BUCKET_*)' });
/** A request's `webhook` block. */
export const webhookSchema = z
  .object(
    {
      url: text,
      extra_params: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
      secret: text,
      timeout: z.number({ error: 'must be a number of seconds' }).positive().max(3600).optional(),
    },
    { error: 'must be an object' },
  )
  .meta({ description: 'Progress and result notifications (WEBHOOK_URL when url is left out)' });

/** Empty strings and empty objects count as "not provided" (the api-wrapper's rule). */
const given = (value: string | undefined): string | undefined => (value === undefined || value === '' ? undefined : value);

function firstIssue(error: z.ZodError, field: string): never {
  const issue = error.issues[0];
  throw invalidField([field, ...(issue?.path ?? []).map(String)].join('.'), issue?.message ?? 'is invalid');
}

async function checkUrl(raw: string, field: string, ctx: DeliveryContext): Promise<string> {
  return (await assertPublicHttpUrl(raw, field, { allowPrivate: ctx.allowPrivateUrls })).toString();
}

async function parseS3(value: unknown, field: string, ctx: DeliveryContext, secrets: JobSecrets): Promise<S3Target | undefined> {
  if (value === undefined || value === null || (isObject(value) && Object.keys(value).length === 0)) return undefined;
  const parsed = s3Schema.safeParse(value);
  if (!parsed.success) firstIssue(parsed.error, field);
  const s3 = parsed.data;
  const target: S3Target = {};
  const endpoint = given(s3.endpoint_url);
  // A client-given endpoint is a URL the worker will send data to: same guard as any other.
  if (endpoint) target.endpointUrl = (await checkUrl(endpoint, `${field}.endpoint_url`, ctx)).replace(/\/+$/, '');
  if (given(s3.bucket_name)) target.bucketName = s3.bucket_name;
  if (given(s3.region)) target.region = s3.region;
  if (given(s3.prefix)) target.prefix = s3.prefix;
  if (s3.connect_timeout !== undefined) target.connectTimeoutS = s3.connect_timeout;
  if (s3.connect_attempts !== undefined) target.attempts = s3.connect_attempts;
  if (given(s3.access_key_id)) secrets.s3AccessKeyId = s3.access_key_id;
  if (given(s3.secret_access_key)) secrets.s3SecretAccessKey = s3.secret_access_key;
  // Asking for S3 with settings that stay incomplete is a mistake, not a silent fall-back to base64.
  const missing = missingS3Settings(ctx.s3Defaults, target, secrets);
  if (missing.length > 0)
    throw invalidField(field, `incomplete: ${missing.join(', ')} missing from the request and the environment`);
  return target;
}

async function parseWebhook(
  value: unknown,
  field: string,
  ctx: DeliveryContext,
  secrets: JobSecrets,
): Promise<WebhookTarget | undefined> {
  if (value === undefined || value === null) return undefined;
  const parsed = webhookSchema.safeParse(value);
  if (!parsed.success) firstIssue(parsed.error, field);
  const hook = parsed.data;
  const url = given(hook.url) ?? ctx.defaultWebhookUrl;
  if (url === undefined) {
    if (hook.extra_params || hook.secret) throw invalidField(`${field}.url`, 'is required (WEBHOOK_URL is not set)');
    return undefined;
  }
  const target: WebhookTarget = {
    url: given(hook.url) ? await checkUrl(url, `${field}.url`, ctx) : url,
    extraParams: hook.extra_params ?? {},
    // An explicit empty secret opts this request out of signing; no secret means WEBHOOK_SECRET.
    signed: hook.secret !== '',
  };
  if (hook.timeout !== undefined) target.timeoutS = hook.timeout;
  if (given(hook.secret)) secrets.webhookSecret = hook.secret;
  return target;
}

export async function parseDelivery(fields: DeliveryFields, ctx: DeliveryContext): Promise<ParsedDelivery> {
  const secrets: JobSecrets = {};
  const result: ParsedDelivery = { secrets };
  if (fields.s3) result.s3 = await parseS3(fields.s3.value, fields.s3.field, ctx, secrets);
  if (fields.webhook) result.webhook = await parseWebhook(fields.webhook.value, fields.webhook.field, ctx, secrets);
  if (!result.webhook && fields.webhookUrl && fields.webhookUrl.value !== undefined && fields.webhookUrl.value !== '') {
    const { value, field } = fields.webhookUrl;
    if (typeof value !== 'string') throw invalidField(field, 'must be a URL string');
    result.webhook = { url: await checkUrl(value, field, ctx), extraParams: {}, signed: true };
  }
  if (!result.webhook && ctx.defaultWebhookUrl) result.webhook = { url: ctx.defaultWebhookUrl, extraParams: {}, signed: true };
  if (result.s3 === undefined) delete result.s3;
  if (result.webhook === undefined) delete result.webhook;
  return result;
}
