// Runs one claimed job end to end: inputs → ComfyUI → outputs. Throws a WorkerError on failure;
// the runner records the outcome.
import type { AxiosInstance } from 'axios';
import type { ComfyClient } from '../comfy/client';
import { collectOutputs, withoutSecrets } from '../comfy/history';
import { EarlyOutputs } from '../comfy/early-outputs';
import { outputReader, type OutputFolders, type OutputReader } from '../comfy/output-files';
import { uploadInputImages, type InputLimits } from '../comfy/inputs';
import type { ComfyEvent, HistoryEntry, OutputFileRef, OutputValue } from '../comfy/types';
import { withUniquePrefix, withUploadedNames } from '../comfy/workflow';
import { deliverOutputs, type DeliveryPlan } from '../delivery/outputs';
import { resolveS3Destination, type S3Clients, type S3Defaults } from '../delivery/s3';
import type { KeptFile, OutputSink } from '../delivery/types';
import type { Logger } from '../observability/logger';
import type { JobOutput, JobRecord, JobResult, JobSecrets } from './types';

export interface ExecuteDeps {
  comfy: ComfyClient;
  outbound: AxiosInstance;
  inputs: InputLimits;
  maxInlineBytes: number;
  /** COMFYUI_OUTPUT_DIR, COMFYUI_TEMP_DIR: outputs read from disk when there, else through /view. */
  outputFolders?: OutputFolders;
  /** COMFY_ORG_API_KEY, used when the request brings no key of its own. */
  orgApiKey: string | undefined;
  s3Defaults: S3Defaults;
  s3Clients: S3Clients;
  /** Where a job's outputs kept for inline answers are written (the store's job files folder). */
  outputSink: (job: JobRecord) => OutputSink;
  /** Called just before POST /prompt (JobStore.markPromptSent); the prompt is not sent if it throws. */
  markPromptSent: (job: JobRecord) => Promise<void>;
  logger: Logger;
  clock?: () => number;
}

export interface Execution {
  result: JobResult;
  files: KeptFile[];
}

export type JobExecutor = (
  job: JobRecord,
  secrets: JobSecrets,
  signal: AbortSignal,
  onEvent: (event: ComfyEvent) => void,
  /** The prompt is in ComfyUI's queue. */
  onQueued?: () => void,
) => Promise<Execution>;

export function createExecutor(deps: ExecuteDeps): JobExecutor {
  const clock = deps.clock ?? Date.now;
  return async (job, secrets, signal, onEvent, onQueued) => {
    const promptId = job.promptId;
    if (promptId === null) throw new Error(`job ${job.id} has no prompt id`);
    const started = clock();
    const { spec } = job;

    const references = await uploadInputImages(deps.comfy.http, deps.outbound, spec.images, deps.inputs, signal);
    // The prompt id is unique per submission, so its head makes the output names unique too.
    const workflow = withUniquePrefix(withUploadedNames(spec.workflow, references), promptId.slice(0, 8));
    const apiKey = secrets.comfyOrgApiKey ?? deps.orgApiKey;
    const extraData = apiKey !== undefined ? { api_key_comfy_org: apiKey } : {};
    await deps.markPromptSent(job);
    const submitted = clock();

    // Files the prompt announces are opened while it runs on (see comfy/early-outputs.ts).
    const early = spec.skipDelivery ? undefined : new EarlyOutputs(readerOf(deps), spec.includeTempOutputs);
    const events = early ? (event: ComfyEvent) => (early.onEvent(event), onEvent(event)) : onEvent;
    try {
      const { entry, warnings } = await deps.comfy.runPrompt({
        promptId,
        workflow,
        extraData,
        signal,
        onEvent: events,
        onQueued,
      });
      const generated = clock();
      return await deliverFinished(deps, job, secrets, entry, { warnings, started, submitted, generated }, signal, early);
    } finally {
      early?.close();
    }
  };
}

/** What delivering a finished prompt's outputs needs (a subset of the executor's deps). */
export type DeliveryDeps = Pick<
  ExecuteDeps,
  'comfy' | 'maxInlineBytes' | 'outputFolders' | 'clock' | 's3Defaults' | 's3Clients' | 'outputSink' | 'logger'
>;

/** When each phase of a run began (epoch ms) and what ComfyUI warned about. */
export interface RunMarks {
  warnings: string[];
  started: number;
  submitted: number;
  generated: number;
}

/**
 * Collects and delivers the outputs of a prompt that finished successfully, and builds the job's
 * result. Shared by a normal run and by recovery (a prompt a previous process submitted).
 */
export async function deliverFinished(
  deps: DeliveryDeps,
  job: JobRecord,
  secrets: JobSecrets,
  entry: HistoryEntry,
  marks: RunMarks,
  signal: AbortSignal,
  reader: OutputReader = readerOf(deps),
): Promise<Execution> {
  const clock = deps.clock ?? Date.now;
  const { spec } = job;
  const { files: refs, values } = collectOutputs(entry, spec.includeTempOutputs);
  const delivered = spec.skipDelivery
    ? { outputs: listOnly(refs, values), files: [] }
    : await deliverOutputs(reader, refs, values, deliveryPlan(deps, job, secrets), signal);
  const finished = clock();
  const queuedAt = Math.round(job.createdAt * 1000);
  const result: JobResult = {
    outputs: delivered.outputs,
    warnings: marks.warnings,
    timings: {
      queued_at_ms: queuedAt,
      started_at_ms: marks.started,
      queue_ms: Math.max(0, marks.started - queuedAt),
      preprocess_ms: marks.submitted - marks.started,
      generation_ms: marks.generated - marks.submitted,
      postprocess_ms: finished - marks.generated,
      completed_at_ms: finished,
      total_ms: finished - queuedAt,
    },
  };
  if (spec.includeComfyResponse && job.promptId !== null) result.comfyResponse = { [job.promptId]: withoutSecrets(entry) };
  return { result, files: delivered.files };
}

function readerOf(deps: DeliveryDeps): OutputReader {
  return outputReader(deps.comfy.http, deps.outputFolders ?? {});
}

function deliveryPlan(deps: DeliveryDeps, job: JobRecord, secrets: JobSecrets): DeliveryPlan {
  const dest = resolveS3Destination(deps.s3Defaults, job.spec.s3, secrets);
  return {
    jobId: job.id,
    inline: dest === undefined || job.spec.forceBase64 ? deps.outputSink(job) : undefined,
    maxInlineBytes: deps.maxInlineBytes,
    s3: dest ? { dest, clients: deps.s3Clients } : undefined,
    allowPartial: job.spec.allowPartial,
    logger: deps.logger,
  };
}

/** Outputs described but not fetched. */
function listOnly(refs: OutputFileRef[], values: OutputValue[]): JobOutput[] {
  return [
    ...refs.map((r) => ({ node_id: r.nodeId, output_type: r.kind, filename: r.filename, subfolder: r.subfolder, type: r.type })),
    ...values.map((v) => ({ node_id: v.nodeId, output_type: v.kind, value: v.value })),
  ];
}
