// The worker-comfyui job output, which the standalone HTTP API's /status and the RunPod door return:
//   {"images": [{"filename", "type": "base64" | "s3_url", "data"}], "errors"?: [warnings]}
// Every output file is returned, not only images (worker-comfyui drops videos and audio), and in
// `images`, so that worker-comfyui's clients, which read `output.images[*].data`, get every file:
// animations, videos (`gifs` of VideoHelperSuite, `videos`), audio, unknown keys. A file ComfyUI
// listed under another key than `images` says so in `output_type`. Values that are not files
// (PreviewAny's text) come under their own key as `{"type": "text", "data": "<text>"}`. Items also
// carry `node_id`, and `subfolder` and `mimetype` when known. No outputs at all:
// `{"status": "success_no_images", "images": []}`, as worker-comfyui answers.
import { z } from 'zod';
import type { ContractView } from '../../webhooks/payload';
import type { ErrorBody } from '../../errors';
import type { JobOutput, JobRecord, JobResult } from '../../jobs/types';
import { renderWorkerComfyError, type WorkerComfyError } from './errors';

export interface WorkerComfyItem {
  filename?: string;
  type?: 'base64' | 's3_url' | 'text';
  /** base64 without a data-URI prefix, a URL, or the text itself. */
  data?: string;
  node_id: string;
  /** The key ComfyUI listed a file under, when it is not `images` (gifs, audio, videos ...). */
  output_type?: string;
  subfolder?: string;
  mimetype?: string;
  /** Why a file was not delivered or inlined (a failed job has no output at all). */
  error?: string;
}

export interface WorkerComfyOutput {
  images: WorkerComfyItem[];
  status?: 'success_no_images';
  errors?: string[];
  [kind: string]: WorkerComfyItem[] | string | string[] | undefined;
}

const itemSchema = z.object({
  filename: z.string().optional(),
  type: z.enum(['base64', 's3_url', 'text']).optional(),
  data: z.string().optional().meta({ description: 'base64 without a data-URI prefix, a URL, or the text itself' }),
  node_id: z.string(),
  output_type: z.string().optional(),
  subfolder: z.string().optional(),
  mimetype: z.string().optional(),
  error: z.string().optional(),
});

/** The job output as the API description shows it (WorkerComfyOutput's shape). */
export const workerComfyOutputSchema = z.looseObject({
  images: z.array(itemSchema).meta({ description: 'Every output file, not only images' }),
  status: z.literal('success_no_images').optional(),
  errors: z.array(z.string()).optional().meta({ description: "ComfyUI's warnings" }),
});

/** A failed job as worker-comfyui reports it. */
export const workerComfyErrorSchema = z.object({ error: z.string(), details: z.unknown().optional() });

const RESERVED = new Set(['status', 'errors', 'images']);

function toItem(output: JobOutput, data: string | undefined): WorkerComfyItem {
  const item: WorkerComfyItem = { node_id: output.node_id };
  if (output.filename === undefined) {
    item.type = 'text';
    item.data = typeof output.value === 'string' ? output.value : JSON.stringify(output.value);
    return item;
  }
  item.filename = output.filename;
  if (output.output_type !== 'images') item.output_type = output.output_type;
  if (output.url !== undefined) {
    item.type = 's3_url';
    item.data = output.url;
  } else if (data !== undefined) {
    item.type = 'base64';
    item.data = data;
  }
  if (output.subfolder) item.subfolder = output.subfolder;
  if (output.mimetype !== undefined) item.mimetype = output.mimetype;
  const error = output.error ?? output.upload_error;
  if (error !== undefined && item.data === undefined) item.error = error;
  return item;
}

/**
 * @param fileData base64 of an inline output's stored bytes (undefined when not kept inline)
 */
export function toWorkerComfyOutput(result: JobResult, fileData: (output: JobOutput) => string | undefined): WorkerComfyOutput {
  const out: WorkerComfyOutput = { images: [] };
  for (const output of result.outputs) {
    // Files all go to `images`; a node's value key must not overwrite the envelope's own keys.
    const kind =
      output.filename !== undefined
        ? 'images'
        : RESERVED.has(output.output_type)
          ? `${output.output_type}_outputs`
          : output.output_type;
    const list = (out[kind] ??= []) as WorkerComfyItem[];
    list.push(toItem(output, fileData(output)));
  }
  if (result.outputs.length === 0) out.status = 'success_no_images';
  if (result.warnings.length > 0) out.errors = result.warnings;
  return out;
}

/** A failed job, as worker-comfyui returns it: `{"error": message, "details"?: ...}` (see errors.ts). */
export function toWorkerComfyError(error: ErrorBody): WorkerComfyError {
  return renderWorkerComfyError(error);
}

/** How a job looks in a webhook sent for the worker-comfyui shaped doors (HTTP /run, RunPod). */
export function workerComfyView(job: JobRecord, fileData: (output: JobOutput) => string | undefined): ContractView {
  const view: ContractView = {
    message: job.error?.message ?? job.status,
    output: job.result ? toWorkerComfyOutput(job.result, fileData) : job.error ? toWorkerComfyError(job.error) : undefined,
  };
  if (job.result) view.timings = { ...job.result.timings };
  return view;
}
