// Turns the files and values ComfyUI reported into delivered outputs. Today: inline bytes (kept
// as blobs beside the job and sent as base64 by the doors). Every file is tried; failures are
// recorded on the output itself so one bad file never hides the others.
import type { ComfyHttp } from '../comfy/http';
import type { OutputFileRef, OutputValue } from '../comfy/types';
import { WorkerError } from '../errors';
import type { JobOutput } from '../jobs/types';
import { describe, readInline } from './inline';
import { mimeTypeOf } from './mime';

export interface DeliveryPlan {
  maxInlineBytes: number;
  /** Partial results are acceptable: fail the job only if no file at all was delivered. */
  allowPartial: boolean;
}

export interface Delivered {
  outputs: JobOutput[];
  /** Bytes of inline outputs; JobOutput.blob indexes into this list. */
  files: Buffer[];
}

export async function deliverOutputs(
  http: ComfyHttp,
  refs: OutputFileRef[],
  values: OutputValue[],
  plan: DeliveryPlan,
  signal: AbortSignal,
): Promise<Delivered> {
  const outputs: JobOutput[] = [];
  const files: Buffer[] = [];
  for (const ref of refs) {
    const output: JobOutput = {
      node_id: ref.nodeId,
      output_type: ref.kind,
      filename: ref.filename,
      subfolder: ref.subfolder,
      type: ref.type,
      mimetype: mimeTypeOf(ref.filename),
    };
    try {
      const inline = await readInline(http, ref, plan.maxInlineBytes, signal);
      if (inline.ok) {
        output.mimetype = mimeTypeOf(ref.filename, inline.contentType);
        output.size = inline.bytes.length;
        output.blob = files.push(inline.bytes) - 1;
      } else {
        output.size = inline.size;
        output.error = inline.error;
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      output.error = err instanceof WorkerError ? err.message : `could not read ${describe(ref)}: ${(err as Error).message}`;
    }
    outputs.push(output);
  }
  for (const value of values) outputs.push({ node_id: value.nodeId, output_type: value.kind, value: value.value });

  const failed = outputs.filter((o) => o.error !== undefined && o.blob === undefined && o.url === undefined);
  const succeeded = outputs.length - failed.length;
  if (failed.length > 0 && !(plan.allowPartial && succeeded > 0)) {
    const list = failed.map((o) => `${o.filename}: ${o.error}`).join('; ');
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
