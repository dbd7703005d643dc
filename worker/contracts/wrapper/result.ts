// The api-wrapper's Result envelope and its HTTP status, built from a job record.
import { z } from 'zod';
import type { ContractView } from '../../webhooks/payload';
import { errorBodySchema, type ErrorBody } from '../../errors';
import { jobProgressSchema, type JobOutput, type JobProgress, type JobRecord } from '../../jobs/types';

export type WrapperStatus = 'pending' | 'processing' | 'generating' | 'completed' | 'failed' | 'cancelled';

export interface WrapperOutput {
  filename?: string;
  subfolder?: string;
  type?: string;
  node_id: string;
  output_type: string;
  mimetype?: string;
  data?: string;
  url?: string;
  upload_error?: string;
  error?: string;
  value?: unknown;
}

export interface WrapperResult {
  id: string;
  status: WrapperStatus;
  message: string;
  output: WrapperOutput[];
  timings: Record<string, number>;
  comfyui_response: unknown;
  progress?: JobProgress;
  error?: ErrorBody;
  warnings?: string[];
}

/** The Result envelope as the API description shows it (WrapperResult's shape). */
export const wrapperResultSchema = z.object({
  id: z.string(),
  status: z.enum(['pending', 'processing', 'generating', 'completed', 'failed', 'cancelled']),
  message: z.string(),
  output: z.array(
    z.object({
      filename: z.string().optional(),
      subfolder: z.string().optional(),
      type: z.string().optional().meta({ description: 'output or temp' }),
      node_id: z.string(),
      output_type: z.string().meta({ description: 'The key ComfyUI listed it under: images, gifs, audio, text ...' }),
      mimetype: z.string().optional(),
      data: z.string().optional().meta({ description: 'base64 (inline delivery)' }),
      url: z.string().optional().meta({ description: 'presigned S3 URL' }),
      upload_error: z.string().optional(),
      error: z.string().optional(),
      value: z.unknown().optional().meta({ description: 'A value that is not a file (text)' }),
    }),
  ),
  timings: z.record(z.string(), z.number()),
  comfyui_response: z.unknown(),
  progress: jobProgressSchema.optional(),
  error: errorBodySchema.optional(),
  warnings: z.array(z.string()).optional(),
});

const MESSAGES: Record<JobRecord['status'], string> = {
  pending: 'Request accepted',
  running: 'Generation started',
  completed: 'Processing complete.',
  failed: 'Generation failed',
  cancelled: 'Request cancelled',
};

/** HTTP status for a Result: 200 completed, 499 cancelled, the error's own status when failed. */
export function wrapperHttpStatus(job: JobRecord): number {
  if (job.status === 'completed') return 200;
  if (job.status === 'cancelled') return 499;
  if (job.status === 'failed') return job.error?.status ?? 500;
  return 200;
}

export function toWrapperOutput(output: JobOutput, data: string | undefined): WrapperOutput {
  const item: WrapperOutput = { node_id: output.node_id, output_type: output.output_type };
  if (output.filename !== undefined) {
    item.filename = output.filename;
    item.subfolder = output.subfolder ?? '';
    item.type = output.type ?? 'output';
  }
  if (output.mimetype !== undefined) item.mimetype = output.mimetype;
  if (data !== undefined) item.data = data;
  if (output.url !== undefined) item.url = output.url;
  if (output.upload_error !== undefined) item.upload_error = output.upload_error;
  if (output.error !== undefined) item.error = output.error;
  if (output.value !== undefined) item.value = output.value;
  return item;
}

/**
 * @param fileData base64 of an inline output's stored bytes (undefined when not kept inline)
 */
export function toWrapperResult(
  job: JobRecord,
  fileData: (output: JobOutput) => string | undefined,
  progress?: JobProgress,
): WrapperResult {
  const status: WrapperStatus = job.status === 'running' ? 'generating' : job.status;
  const result = job.result;
  const queuedAt = Math.round(job.createdAt * 1000);
  const completedAt = job.completedAt !== null ? Math.round(job.completedAt * 1000) : undefined;
  const timings: Record<string, number> = result
    ? { ...result.timings }
    : {
        queued_at_ms: queuedAt,
        ...(completedAt !== undefined ? { completed_at_ms: completedAt, total_ms: completedAt - queuedAt } : {}),
      };
  const body: WrapperResult = {
    id: job.id,
    status,
    message:
      job.error?.message ??
      (job.status === 'running' && job.promptId ? `${MESSAGES.running} (ComfyUI job: ${job.promptId})` : MESSAGES[job.status]),
    output: (result?.outputs ?? []).map((o) => toWrapperOutput(o, fileData(o))),
    timings,
    comfyui_response: result?.comfyResponse ?? {},
  };
  if (progress) body.progress = progress;
  if (job.error) body.error = job.error;
  if (result && result.warnings.length > 0) body.warnings = result.warnings;
  return body;
}

/** How a job looks in a webhook sent for the api-wrapper door (and the Vast door). */
export function wrapperView(job: JobRecord, fileData: (output: JobOutput) => string | undefined): ContractView {
  const result = toWrapperResult(job, fileData);
  return { message: result.message, output: result.output, timings: result.timings };
}
