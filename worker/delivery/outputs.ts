// Turns the files and values ComfyUI reported into delivered outputs: uploaded to S3 (a presigned
// URL) and/or kept inline (written to the job's folder on the data volume, sent as base64 by the
// doors; an output only uploaded to S3 is written nowhere). Every file is tried; a failure is
// recorded on the output itself so one bad file never hides the others.
// A file that could not be fetched or uploaded fails the job unless partial results were asked
// for and another file was delivered; a file merely over OUTPUT_BASE64_MAX_BYTES does not.
import type { OutputReader } from '../comfy/output-files';
import type { OutputFileRef, OutputValue } from '../comfy/types';
import { WorkerError } from '../errors';
import type { JobOutput, KeptFile, OutputSink } from './types';
import type { Logger } from '../observability/logger';
import { sleep } from '../util/time';
import { describe, keepInline, openOutput } from './inline';
import { mimeTypeOf } from './mime';
import { describeS3Error, isRetryableS3Error, objectKey, presign, uploadStream, type S3Clients, type S3Destination } from './s3';

/** Pause before re-reading a file from ComfyUI for another upload attempt. */
const UPLOAD_RETRY_DELAY_MS = 1_000;
/**
 * The SDK retries each request (each part) S3_CONNECT_ATTEMPTS times; an upload that still fails
 * mid-stream cannot be resumed, so the file is read from ComfyUI once more and sent again.
 */
const WHOLE_FILE_ATTEMPTS = 2;

export interface DeliveryPlan {
  jobId: string;
  /** Keep the bytes inline (no S3, or the request asked for base64), in files from this sink. */
  inline: OutputSink | undefined;
  maxInlineBytes: number;
  s3?: { dest: S3Destination; clients: S3Clients };
  /** Partial results are acceptable: fail the job only if no file at all was delivered. */
  allowPartial: boolean;
  logger: Logger;
}

export interface Delivered {
  outputs: JobOutput[];
  /** Files of inline outputs; JobOutput.blob indexes into this list. */
  files: KeptFile[];
}

async function uploadWithRetries(
  http: OutputReader,
  ref: OutputFileRef,
  plan: DeliveryPlan,
  s3: NonNullable<DeliveryPlan['s3']>,
  signal: AbortSignal,
): Promise<string> {
  const client = s3.clients.for(s3.dest);
  const key = objectKey(s3.dest, plan.jobId, ref.subfolder, ref.filename);
  let lastError: unknown;
  for (let attempt = 1; attempt <= WHOLE_FILE_ATTEMPTS; attempt++) {
    try {
      // A stream cannot be replayed: each attempt reads the file from ComfyUI again.
      const view = await openOutput(http, ref, signal);
      await uploadStream(client, s3.dest, key, view.stream, mimeTypeOf(ref.filename, view.contentType), signal);
      return await presign(client, s3.dest, key, s3.clients.presignExpiresS);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof WorkerError) throw err; // the file is missing on ComfyUI: retrying S3 won't help
      lastError = err;
      plan.logger.warn(
        { jobId: plan.jobId, file: describe(ref), attempt, reason: describeS3Error(err, s3.dest) },
        'S3 upload failed',
      );
      if (!isRetryableS3Error(err)) break; // wrong credentials, missing bucket: another try won't change it
      if (attempt < WHOLE_FILE_ATTEMPTS) await sleep(UPLOAD_RETRY_DELAY_MS * attempt, signal);
    }
  }
  throw new Error(describeS3Error(lastError, s3.dest));
}

/** One file's outcome: `failed` when it could not be fetched or uploaded (not merely too big to inline). */
async function deliverFile(
  http: OutputReader,
  ref: OutputFileRef,
  plan: DeliveryPlan,
  files: KeptFile[],
  signal: AbortSignal,
): Promise<{ output: JobOutput; failed: boolean }> {
  const output: JobOutput = {
    node_id: ref.nodeId,
    output_type: ref.kind,
    filename: ref.filename,
    subfolder: ref.subfolder,
    type: ref.type,
    mimetype: mimeTypeOf(ref.filename),
  };
  const failure = (err: unknown) => (err instanceof Error ? err.message : String(err));
  let failed = false;
  if (plan.s3) {
    try {
      output.url = await uploadWithRetries(http, ref, plan, plan.s3, signal);
      plan.s3.clients.uploaded('uploaded');
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      output.upload_error = failure(err);
      failed = true;
      plan.s3.clients.uploaded('failed');
    }
  }
  if (plan.inline) {
    try {
      const file = plan.inline.file(files.length);
      const inline = await keepInline(http, ref, plan.maxInlineBytes, file, signal);
      if (inline.ok) {
        output.mimetype = mimeTypeOf(ref.filename, inline.contentType);
        output.size = inline.size;
        output.blob = files.push({ path: file, size: inline.size, bytes: inline.bytes }) - 1;
      } else {
        // Too big to inline: said on the output, as the api-wrapper does; the job still completes.
        output.size = inline.size;
        output.error = inline.error;
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      output.error = failure(err);
      failed = true;
    }
  }
  return { output, failed: failed && output.url === undefined && output.blob === undefined };
}

export async function deliverOutputs(
  http: OutputReader,
  refs: OutputFileRef[],
  values: OutputValue[],
  plan: DeliveryPlan,
  signal: AbortSignal,
): Promise<Delivered> {
  const outputs: JobOutput[] = [];
  const files: KeptFile[] = [];
  const failed: JobOutput[] = [];
  for (const ref of refs) {
    const result = await deliverFile(http, ref, plan, files, signal);
    outputs.push(result.output);
    if (result.failed) failed.push(result.output);
  }
  for (const value of values) outputs.push({ node_id: value.nodeId, output_type: value.kind, value: value.value });

  const delivered = refs.length - failed.length;
  if (failed.length > 0 && !(plan.allowPartial && delivered > 0)) {
    const list = failed.map((o) => `${o.filename}: ${o.upload_error ?? o.error ?? 'not delivered'}`).join('; ');
    throw new WorkerError(
      500,
      'output_error',
      `${failed.length} of ${refs.length} output files could not be delivered: ${list}`,
      {
        details: { outputs },
      },
    );
  }
  return { outputs, files };
}
