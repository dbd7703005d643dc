// S3 delivery: where an output goes (request settings over environment settings), and the upload
// itself, streamed from ComfyUI's /view into a multipart upload through one part buffer reused
// for the whole file, so memory does not grow with the file (nor with garbage parts). Works with AWS and S3-compatible stores (R2, Backblaze, MinIO): path-style addressing for
// custom endpoints, checksums only when the operation requires them (R2 rejects the others).
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import type * as S3Presigner from '@aws-sdk/s3-request-presigner';
import type { Readable } from 'node:stream';
import { ConfigError, type Config } from '../config';
import type { S3Credentials, S3Target } from './types';
import { guardedLookup } from '../net/address-guard';
import { TransferGc } from '../util/transfer-gc';

/**
 * 5 MiB is S3's smallest part. One buffer, reused: a part is read (from ComfyUI, on this machine:
 * quick) then sent, so an upload holds 5 MiB whatever the file's size. (A second buffer to read
 * the next part while one is sent saves little and costs another 5 MiB: measured in
 * perf/bytes.ts.) Every part but the last has this size (R2 requires equal parts).
 */
const PART_SIZE = 5 * 1024 * 1024;

/**
 * The AWS SDK, loaded at the first S3 delivery rather than at startup: it is a tenth of the
 * worker's memory at rest, and many workers never upload.
 */
function sdk(): typeof S3Sdk {
  return require('@aws-sdk/client-s3') as typeof S3Sdk;
}

/** Loads the SDK now: for a worker that uploads by default, at startup rather than on a job's path. */
export function preloadS3Sdk(): void {
  sdk();
}
const MAX_CACHED_CLIENTS = 16;

export type S3Env = Config['s3'];

/** Everything needed to upload, credentials included. Never logged. */
export interface S3Destination {
  bucket: string;
  region: string;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  prefix: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The endpoint came from a request: hold it to the private-address rule at connect time. */
  untrustedEndpoint: boolean;
  /** The request's connect_timeout / connect_attempts, if it gave them. */
  connectTimeoutS?: number;
  attempts?: number;
}

/** Environment defaults after reading both naming schemes (S3_* first, BUCKET_* fills gaps). */
export interface S3Defaults {
  bucket?: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  prefix?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

const AWS_VIRTUAL_HOST = /^([^.]+)\.s3[.-](?:([a-z0-9-]+)\.)?amazonaws\.com$/;

/**
 * worker-comfyui's BUCKET_ENDPOINT_URL holds the bucket: `https://<bucket>.s3.<region>.amazonaws.com`
 * (virtual-hosted AWS) or `<endpoint>/<bucket>` (any S3-compatible store, path-style).
 */
export function parseBucketEndpoint(raw: string): Pick<S3Defaults, 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'> {
  const url = new URL(raw);
  const aws = AWS_VIRTUAL_HOST.exec(url.hostname);
  if (aws) {
    const region = aws[2] && aws[2] !== 's3' ? aws[2] : 'us-east-1';
    return { bucket: aws[1], region, endpoint: undefined, forcePathStyle: false };
  }
  const bucket = url.pathname.split('/').filter(Boolean)[0];
  if (!bucket) {
    throw new ConfigError(
      `BUCKET_ENDPOINT_URL: "${raw}" names no bucket; use https://<bucket>.s3.<region>.amazonaws.com or <endpoint>/<bucket>`,
    );
  }
  return { bucket, endpoint: url.origin, forcePathStyle: true };
}

export function s3Defaults(env: S3Env): S3Defaults {
  const fromBucketUrl = env.bucketEndpointUrl ? parseBucketEndpoint(env.bucketEndpointUrl) : {};
  return {
    bucket: env.bucketName ?? fromBucketUrl.bucket,
    region: env.region ?? fromBucketUrl.region,
    endpoint: env.endpointUrl ?? fromBucketUrl.endpoint,
    forcePathStyle: env.forcePathStyle ?? fromBucketUrl.forcePathStyle,
    prefix: env.prefix,
    accessKeyId: env.accessKeyId ?? env.bucketAccessKeyId,
    secretAccessKey: env.secretAccessKey ?? env.bucketSecretAccessKey,
  };
}

/** Which of the settings an upload needs are known neither from the request nor the environment. */
export function missingS3Settings(defaults: S3Defaults, target: S3Target | undefined, secrets: S3Credentials): string[] {
  return [
    !(target?.bucketName ?? defaults.bucket) && 'bucket_name (S3_BUCKET_NAME)',
    !(secrets.s3AccessKeyId ?? defaults.accessKeyId) && 'access_key_id (S3_ACCESS_KEY_ID)',
    !(secrets.s3SecretAccessKey ?? defaults.secretAccessKey) && 'secret_access_key (S3_SECRET_ACCESS_KEY)',
  ].filter((name): name is string => typeof name === 'string');
}

/**
 * Request settings win field by field; the environment fills the rest. Uploads are on when a key,
 * a secret and a bucket are all known.
 */
export function resolveS3Destination(
  defaults: S3Defaults,
  target: S3Target | undefined,
  secrets: S3Credentials,
): S3Destination | undefined {
  const bucket = target?.bucketName ?? defaults.bucket;
  const accessKeyId = secrets.s3AccessKeyId ?? defaults.accessKeyId;
  const secretAccessKey = secrets.s3SecretAccessKey ?? defaults.secretAccessKey;
  if (!bucket || !accessKeyId || !secretAccessKey) return undefined;
  const endpoint = target?.endpointUrl ?? defaults.endpoint;
  const custom = endpoint !== undefined && !new URL(endpoint).hostname.endsWith('.amazonaws.com');
  return {
    bucket,
    region: target?.region ?? defaults.region ?? 'us-east-1',
    endpoint,
    forcePathStyle: target?.endpointUrl !== undefined ? custom : (defaults.forcePathStyle ?? custom),
    prefix: (target?.prefix ?? defaults.prefix ?? '').replace(/^\/+|\/+$/g, ''),
    accessKeyId,
    secretAccessKey,
    untrustedEndpoint: target?.endpointUrl !== undefined,
    ...(target?.connectTimeoutS !== undefined ? { connectTimeoutS: target.connectTimeoutS } : {}),
    ...(target?.attempts !== undefined ? { attempts: target.attempts } : {}),
  };
}

/** `<prefix>/<job id>/<subfolder>/<filename>`, without empty parts. */
export function objectKey(dest: S3Destination, jobId: string, subfolder: string, filename: string): string {
  return [dest.prefix, jobId, subfolder, filename].filter((part) => part !== '').join('/');
}

export interface S3Options {
  connectTimeoutMs: number;
  attempts: number;
  presignExpiresS: number;
  /** ALLOW_PRIVATE_URLS: request-given endpoints may then be private. */
  allowPrivate: boolean;
  /** Told how each output file's upload ended (the metrics count them). */
  onUpload?: (result: 'uploaded' | 'failed') => void;
}

/** One S3 client per destination, reused across jobs (a few are kept). */
export class S3Clients {
  private readonly clients = new Map<string, S3Client>();
  private readonly opts: S3Options;

  constructor(opts: S3Options) {
    this.opts = opts;
  }

  /** An output file's upload ended, after its retries. */
  uploaded(result: 'uploaded' | 'failed'): void {
    this.opts.onUpload?.(result);
  }

  get presignExpiresS(): number {
    return this.opts.presignExpiresS;
  }

  /** Tries per request to S3 (each part of a multipart upload is retried on its own). */
  attemptsFor(dest: S3Destination): number {
    return dest.attempts ?? this.opts.attempts;
  }

  for(dest: S3Destination): S3Client {
    const guarded = dest.untrustedEndpoint && !this.opts.allowPrivate;
    const connectionTimeout = dest.connectTimeoutS !== undefined ? dest.connectTimeoutS * 1000 : this.opts.connectTimeoutMs;
    const key = createHash('sha256')
      .update(
        [
          dest.endpoint,
          dest.region,
          dest.forcePathStyle,
          dest.accessKeyId,
          dest.secretAccessKey,
          guarded,
          connectionTimeout,
        ].join('\0'),
      )
      .digest('hex');
    let client = this.clients.get(key);
    if (!client) {
      if (this.clients.size >= MAX_CACHED_CLIENTS) {
        const [oldestKey, oldest] = this.clients.entries().next().value as [string, S3Client];
        oldest.destroy();
        this.clients.delete(oldestKey);
      }
      client = new (sdk().S3Client)({
        region: dest.region,
        endpoint: dest.endpoint,
        forcePathStyle: dest.forcePathStyle,
        credentials: { accessKeyId: dest.accessKeyId, secretAccessKey: dest.secretAccessKey },
        // The SDK retries each request (each buffered part) on network and server errors.
        maxAttempts: this.attemptsFor(dest),
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: {
          connectionTimeout,
          requestTimeout: 5 * 60_000,
          // A request-given endpoint was checked when the request arrived; check again at connect
          // time so a name that now resolves to a private address (DNS rebinding) is refused.
          ...(guarded
            ? {
                httpAgent: new http.Agent({ keepAlive: true, lookup: guardedLookup }),
                httpsAgent: new https.Agent({ keepAlive: true, lookup: guardedLookup }),
              }
            : {}),
        },
      });
      this.clients.set(key, client);
    }
    return client;
  }

  destroy(): void {
    for (const client of this.clients.values()) client.destroy();
    this.clients.clear();
  }
}

/** Streams one body into the bucket (multipart when over one part); aborts with the signal. */
export async function uploadStream(
  client: S3Client,
  dest: S3Destination,
  key: string,
  body: Readable,
  contentType: string,
  signal: AbortSignal,
): Promise<void> {
  const {
    PutObjectCommand,
    CreateMultipartUploadCommand,
    UploadPartCommand,
    CompleteMultipartUploadCommand,
    AbortMultipartUploadCommand,
  } = sdk();
  const reader = new PartReader(body);
  const target = { Bucket: dest.bucket, Key: key };
  const options = { abortSignal: signal };
  try {
    // The SDK retries a part from this buffer (S3_CONNECT_ATTEMPTS): it is refilled only after.
    const buffer = Buffer.allocUnsafe(PART_SIZE);
    let length = await reader.fill(buffer);
    if (length < PART_SIZE || (await reader.atEnd())) {
      const part = buffer.subarray(0, length);
      await client.send(
        new PutObjectCommand({ ...target, Body: part, ContentLength: length, ContentType: contentType }),
        options,
      );
      return;
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ ...target, ContentType: contentType }), options);
    try {
      const parts: CompletedPart[] = [];
      for (let number = 1; length > 0; number++) {
        const part = { PartNumber: number, Body: buffer.subarray(0, length), ContentLength: length };
        const { ETag } = await client.send(new UploadPartCommand({ ...target, UploadId, ...part }), options);
        parts.push({ PartNumber: number, ETag });
        length = await reader.fill(buffer);
      }
      await client.send(new CompleteMultipartUploadCommand({ ...target, UploadId, MultipartUpload: { Parts: parts } }), options);
    } catch (err) {
      // No parts left behind (they would be billed): the upload is dropped whole.
      await client.send(new AbortMultipartUploadCommand({ ...target, UploadId })).catch(() => undefined);
      throw err;
    }
  } finally {
    body.destroy();
  }
}

/** Reads a stream into a part buffer: filled whole unless the stream ends first. */
class PartReader {
  private readonly chunks: AsyncIterator<Buffer>;
  private readonly collector = new TransferGc();
  private carry: Buffer | undefined;
  private ended = false;

  constructor(body: Readable) {
    this.chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Bytes put into `buffer` (fewer than its length only at the end of the stream). */
  async fill(buffer: Buffer): Promise<number> {
    let n = 0;
    while (n < buffer.length && (await this.next())) {
      const chunk = this.carry!;
      const take = Math.min(chunk.length, buffer.length - n);
      chunk.copy(buffer, n, 0, take);
      n += take;
      this.carry = take < chunk.length ? chunk.subarray(take) : undefined;
    }
    return n;
  }

  async atEnd(): Promise<boolean> {
    return !(await this.next());
  }

  /** Whether there are bytes to read (held in `carry`). */
  private async next(): Promise<boolean> {
    if (this.carry) return true;
    if (this.ended) return false;
    const { done, value } = await this.chunks.next();
    if (done) this.ended = true;
    else {
      this.carry = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
      this.collector.count(this.carry.length);
    }
    return !this.ended;
  }
}

export function presign(client: S3Client, dest: S3Destination, key: string, expiresS: number): Promise<string> {
  const { getSignedUrl } = require('@aws-sdk/s3-request-presigner') as typeof S3Presigner;
  return getSignedUrl(client, new (sdk().GetObjectCommand)({ Bucket: dest.bucket, Key: key }), { expiresIn: expiresS });
}

interface SdkError {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: { code?: unknown };
  /** Set on every error S3 answered: 'client' for 4xx, 'server' for 5xx. */
  $fault?: unknown;
}

/**
 * The S3 error name or network error code behind an upload failure (the SDK wraps some). Errors
 * are read by shape, not `instanceof`: the SDK and a test runner may load other copies of the classes.
 */
function errorName(err: unknown): string {
  const e = err as SdkError;
  if (e.$fault !== undefined && typeof e.name === 'string') return e.name;
  if (typeof e.code === 'string') return e.code;
  if (typeof e.cause?.code === 'string') return e.cause.code;
  const code = /\b(E[A-Z]{4,})\b/.exec(String(e.message ?? ''))?.[1];
  return code ?? (typeof e.name === 'string' ? e.name : 'Error');
}

/** Worth another attempt: the network or the server failed, not the request (4xx). */
export function isRetryableS3Error(err: unknown): boolean {
  return (err as SdkError).$fault !== 'client';
}

/** A reason a client can act on, without credentials or internals. */
export function describeS3Error(err: unknown, dest: S3Destination): string {
  const name = errorName(err);
  const where = dest.endpoint ? `${dest.endpoint} bucket ${dest.bucket}` : `bucket ${dest.bucket}`;
  switch (name) {
    case 'NoSuchBucket':
      return `S3 ${where} does not exist (NoSuchBucket)`;
    case 'InvalidAccessKeyId':
    case 'SignatureDoesNotMatch':
    case 'AccessDenied':
    case 'InvalidToken':
    case 'ExpiredToken':
      return `S3 rejected the credentials for ${where} (${name})`;
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'TimeoutError':
      return `cannot reach S3 at ${where} (${name})`;
    default:
      return `S3 upload to ${where} failed (${name})`;
  }
}
