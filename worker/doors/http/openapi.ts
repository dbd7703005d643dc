// The HTTP door's routes for its API description (doors/openapi.ts builds the document). Request
// bodies use the schemas the contracts' parsers validate with; a test checks that every route the
// app registers is here and that every example passes its schema.
import { z } from 'zod';
import { jobProgressSchema } from '../../jobs/types';
import { workerComfyInputSchema } from '../../contracts/worker-comfyui/input';
import { workerComfyOutputSchema } from '../../contracts/worker-comfyui/output';
import { wrapperRequestSchema } from '../../contracts/wrapper/request';
import { wrapperResultSchema } from '../../contracts/wrapper/result';
import { OPENAPI_ROUTE, docs, type DoorDoc, type RouteDoc } from '../openapi';

/** A small SD1.5 text-to-image graph (misc/example_workflow_api.json has the full one). */
const WORKFLOW = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'v1-5-pruned-emaonly-fp16.safetensors' } },
  '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
  '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
  '3': {
    class_type: 'KSampler',
    inputs: {
      seed: 42,
      steps: 20,
      cfg: 8,
      sampler_name: 'euler',
      scheduler: 'normal',
      denoise: 1,
      model: ['4', 0],
      positive: ['6', 0],
      negative: ['7', 0],
      latent_image: ['5', 0],
    },
  },
  '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] } },
};
const JOB_ID = '550e8400-e29b-41d4-a716-446655440000';

export const WRAPPER_EXAMPLES = {
  modifier: {
    input: {
      modifier: 'Text2Image',
      modifications: { prompt: 'a lighthouse at dusk', width: 512, height: 512, steps: 20, seed: 42 },
    },
  },
  workflow: { input: { request_id: 'r-1', workflow_json: WORKFLOW } },
};

const RESULT_EXAMPLE = {
  id: 'r-1',
  status: 'completed',
  message: 'Processing complete.',
  output: [
    {
      filename: 'ComfyUI_1a2b3c4d_00001_.png',
      subfolder: '',
      type: 'output',
      node_id: '9',
      output_type: 'images',
      mimetype: 'image/png',
      data: 'iVBORw0KGgo=',
    },
  ],
  timings: { queued_at_ms: 1704067200120, total_ms: 20590 },
  comfyui_response: {},
};

const wrapperBody = { schema: wrapperRequestSchema, examples: WRAPPER_EXAMPLES };
const resultOf = (description: string, example?: unknown) => ({
  description,
  body: { schema: wrapperResultSchema, ...(example !== undefined ? { examples: { result: example } } : {}) },
});

/** POST /run: the seed's form, worker-comfyui's (RunPod) form, or the wrapper's. */
const runBodySchema = z.union([
  workerComfyInputSchema,
  z.object({
    input: z.union([workerComfyInputSchema, z.string().meta({ description: 'the input as a JSON text' })]),
    webhook: z.string().optional().meta({ description: "RunPod's top-level webhook URL" }),
  }),
  wrapperRequestSchema,
]);

const statusSchema = z.object({
  job_id: z.string(),
  status: z.enum(['pending', 'running', 'completed', 'failed', 'cancelled']),
  result: z
    .union([workerComfyOutputSchema, wrapperResultSchema])
    .nullable()
    .meta({ description: "Set once completed, in the shape the job came in (worker-comfyui's output or the wrapper's Result)" }),
  error: z.string().nullable(),
  error_code: z.string().nullable(),
  error_details: z.unknown().optional(),
  created_at: z.number().meta({ description: 'epoch seconds' }),
  started_at: z.number().nullable(),
  completed_at: z.number().nullable(),
  progress: jobProgressSchema.nullable().optional(),
  queue_position: z.number().int().optional().meta({ description: 'Pending jobs ahead (0 = next)' }),
  webhook: z
    .object({
      status: z.enum(['waiting', 'pending', 'delivered', 'failed']),
      attempts: z.number().int(),
      last_error: z.string().nullable(),
    })
    .optional(),
});

const countsSchema = z.object({
  pending: z.number().int(),
  running: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
});
const backendSchema = z.looseObject({
  url: z.string(),
  healthy: z.boolean(),
  reachable: z.boolean(),
  websocket: z.enum(['idle', 'connecting', 'open', 'reconnecting', 'down', 'closed']),
  error: z.string().optional(),
  gpu_fault: z.string().optional().meta({ description: 'Set after a CUDA fault: the GPU needs a restart' }),
});

const healthSchema = z.looseObject({
  status: z.enum(['healthy', 'unhealthy', 'stopping']),
  database_path: z.string(),
  job_stats: countsSchema.extend({ total: z.number().int() }).nullable(),
  queue_depth: z.number().int().nullable(),
  comfyui: backendSchema.optional(),
  backends: z.array(backendSchema).optional(),
  database_error: z.string().optional(),
});

const cancelSchema = z.object({ message: z.string(), status: z.string() });

/** The SSE stream of POST /generate/stream (the api-wrapper's, api-wrapper-compat §10). */
const streamSchema = z.string().meta({
  description:
    'text/event-stream, one `data: <json>` event per change: first {request_id, status: "queued", message: "Request queued", timestamp}; then, when the status, message, queue position or progress changes, {request_id, status, message, timestamp, elapsed_time, queue_info, queue_position: {current_queue, position, queue_size, estimated_wait_time}, progress?}; finally {request_id, status: "final_result", result: <the Result>, elapsed_time}, or {status: "error", message}',
});

function routes(comfyProxy: boolean): RouteDoc[] {
  const list: RouteDoc[] = [
    OPENAPI_ROUTE,
    {
      method: 'get',
      path: '/health',
      summary: 'ComfyUI reachable (each backend), database usable, queue depth',
      tags: ['operations'],
      auth: 'none',
      responses: {
        '200': {
          description: 'healthy',
          body: { schema: healthSchema },
        },
        '503': {
          description:
            'unhealthy: ComfyUI unreachable, websocket closed or the database unusable; or stopping (SIGTERM/SIGINT, with Retry-After)',
          body: { schema: healthSchema },
        },
      },
    },
    {
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus metrics',
      tags: ['operations'],
      responses: { '200': docs.text('Prometheus text format') },
    },
    {
      method: 'post',
      path: '/generate/sync',
      summary: 'Run a job and answer when it has ended (api-wrapper)',
      tags: ['api-wrapper'],
      body: wrapperBody,
      params: [
        {
          name: 'X-Return-Outputs-As-Base64',
          in: 'header',
          description: '1|true|yes|on: inline every output',
          schema: z.string(),
        },
        {
          name: 'X-Include-ComfyUI-Response',
          in: 'header',
          description: "1|true|yes|on: ComfyUI's history entry",
          schema: z.string(),
        },
      ],
      responses: {
        '200': resultOf('completed', RESULT_EXAMPLE),
        '400': docs.error('invalid request (naming the field), or ComfyUI refused the workflow (a failed Result)'),
        '409': docs.error('request_id names a job still in progress'),
        '413': docs.error('body over MAX_BODY_MB'),
        '500': resultOf('a node raised, or outputs could not be delivered (failed Result)'),
        '502': resultOf('ComfyUI went away mid-job (failed Result)'),
        '503': {
          ...docs.error(
            'ComfyUI did not come within COMFY_READY_TIMEOUT_S of the request (a failed Result), its GPU needs a restart, the queue is full, or the worker is stopping',
          ),
          headers: { 'Retry-After': 'seconds' },
        },
        '504': resultOf('the deadline (JOB_TIMEOUT_S) passed (failed Result)'),
      },
    },
    {
      method: 'post',
      path: '/generate/stream',
      summary: 'Run a job and stream its progress as server-sent events, ending with the Result',
      tags: ['api-wrapper'],
      body: wrapperBody,
      params: [
        {
          name: 'cancel_on_disconnect',
          in: 'query',
          description: 'true: the client leaving cancels the job (default false: the job runs on, readable at /result/{id})',
          schema: z.string(),
        },
      ],
      responses: {
        '200': { description: 'the event stream', body: { schema: streamSchema, contentType: 'text/event-stream' } },
        '400': docs.error('invalid request, naming the field'),
        '503': { ...docs.error('the queue is full, or the worker is stopping'), headers: { 'Retry-After': 'seconds' } },
      },
    },
    {
      method: 'post',
      path: '/generate',
      summary: 'Queue a job and answer 202 at once; poll /result/{id}',
      tags: ['api-wrapper'],
      body: wrapperBody,
      responses: {
        '202': resultOf('accepted (status pending)', {
          id: 'r-1',
          status: 'pending',
          message: 'Request accepted',
          output: [],
          timings: { queued_at_ms: 1704067200120 },
          comfyui_response: {},
        }),
        '400': docs.error('invalid request, naming the field'),
        '409': docs.error('request_id names a job still in progress'),
        '503': { ...docs.error('the queue is full'), headers: { 'Retry-After': 'seconds' } },
      },
    },
    {
      method: 'get',
      path: '/result/{id}',
      summary: "A job's Result (any contract's job can be read here)",
      tags: ['api-wrapper'],
      params: [docs.pathParam('id', 'request_id or job id')],
      responses: {
        '200': resultOf('pending, generating (with progress) or completed', RESULT_EXAMPLE),
        '404': resultOf('unknown id (status failed, "Request ID not found")'),
        '499': resultOf('cancelled'),
        '500': resultOf('failed (the failure keeps its own status: 400, 500, 502, 504)'),
      },
    },
    {
      method: 'post',
      path: '/cancel/{id}',
      summary: 'Cancel a job, whichever door it came through',
      tags: ['api-wrapper'],
      params: [docs.pathParam('id', 'request_id or job id')],
      responses: {
        '200': {
          description: 'cancelled, cancelling, or already ended',
          body: {
            schema: cancelSchema,
            examples: { cancelled: { message: 'Successfully cancelled request r-1', status: 'cancelled' } },
          },
        },
        '404': { description: 'unknown id', body: { schema: z.object({ error: z.string() }) } },
      },
    },
    {
      method: 'get',
      path: '/queue-info',
      summary: "The queue told in the wrapper's three fields",
      tags: ['api-wrapper'],
      responses: {
        '200': {
          description: 'queue sizes',
          body: {
            schema: z.object({
              preprocess_queue_size: z.number().int(),
              generation_queue_size: z.number().int(),
              postprocess_queue_size: z.number().int(),
            }),
          },
        },
      },
    },
    {
      method: 'post',
      path: '/run',
      summary: 'Submit a job (seed, worker-comfyui or api-wrapper form) and come back for its result',
      tags: ['jobs'],
      body: {
        schema: runBodySchema,
        examples: {
          seed: { workflow: WORKFLOW, images: [] },
          runpod: { input: { workflow: WORKFLOW } },
          wrapper: WRAPPER_EXAMPLES.modifier,
        },
      },
      responses: {
        '200': {
          description: 'stored',
          body: {
            schema: z.object({ job_id: z.string(), status: z.literal('pending') }),
            examples: { stored: { job_id: JOB_ID, status: 'pending' } },
          },
        },
        '400': docs.error('invalid request, naming the field'),
        '503': { ...docs.error('the queue is full (MAX_QUEUE_SIZE)'), headers: { 'Retry-After': 'seconds' } },
      },
    },
    {
      method: 'get',
      path: '/status/{job_id}',
      summary: "A job's status, progress and result",
      tags: ['jobs'],
      params: [docs.pathParam('job_id', 'the job id')],
      responses: {
        '200': {
          description: 'the job',
          body: {
            schema: statusSchema,
            examples: {
              completed: {
                job_id: JOB_ID,
                status: 'completed',
                result: {
                  images: [{ filename: 'ComfyUI_1a2b3c4d_00001_.png', type: 'base64', data: 'iVBORw0KGgo=', node_id: '9' }],
                },
                error: null,
                error_code: null,
                created_at: 1704067200.12,
                started_at: 1704067205.3,
                completed_at: 1704067225.71,
              },
            },
          },
        },
        '404': docs.error('unknown job'),
      },
    },
    {
      method: 'get',
      path: '/stats',
      summary: 'Job counts by status, and optionally the latest 50 jobs',
      tags: ['jobs'],
      params: [{ name: 'include_recent', in: 'query', description: 'true: add recent_jobs', schema: z.string() }],
      responses: {
        '200': {
          description: 'counts',
          body: {
            schema: z.object({
              total_jobs: z.number().int(),
              pending_jobs: z.number().int(),
              running_jobs: z.number().int(),
              completed_jobs: z.number().int(),
              failed_jobs: z.number().int(),
              cancelled_jobs: z.number().int(),
              recent_jobs: z
                .array(
                  z.object({
                    id: z.string(),
                    status: z.string(),
                    created_at: z.number(),
                    started_at: z.number().nullable(),
                    completed_at: z.number().nullable(),
                    error: z.string().nullable(),
                  }),
                )
                .optional(),
            }),
          },
        },
      },
    },
    {
      method: 'post',
      path: '/admin/cleanup',
      summary: 'Delete ended jobs older than max_age_hours, with their files',
      tags: ['admin'],
      auth: 'admin',
      params: [{ name: 'max_age_hours', in: 'query', description: 'default JOB_RETENTION_HOURS', schema: z.string() }],
      responses: {
        '200': {
          description: 'deleted',
          body: {
            schema: z.object({ message: z.string(), deleted: z.number().int() }),
            examples: { deleted: { message: 'Cleaned up 3 old jobs', deleted: 3 } },
          },
        },
        '400': docs.error('max_age_hours is not a number'),
      },
    },
    {
      method: 'post',
      path: '/admin/reset-stuck',
      summary: 'Fail jobs running longer than max_running_time_hours',
      tags: ['admin'],
      auth: 'admin',
      params: [{ name: 'max_running_time_hours', in: 'query', description: 'default STUCK_JOB_HOURS', schema: z.string() }],
      responses: {
        '200': {
          description: 'reset',
          body: {
            schema: z.object({ message: z.string(), reset: z.number().int() }),
            examples: { reset: { message: 'Reset 1 stuck jobs', reset: 1 } },
          },
        },
        '400': docs.error('max_running_time_hours is not a number'),
      },
    },
    {
      method: 'delete',
      path: '/admin/job/{job_id}',
      summary: 'Delete one ended job and its files',
      tags: ['admin'],
      auth: 'admin',
      params: [docs.pathParam('job_id', 'the job id')],
      responses: {
        '200': { description: 'deleted', body: { schema: z.object({ message: z.string() }) } },
        '400': docs.error('the job is pending or running'),
        '404': docs.error('unknown job'),
      },
    },
  ];
  if (comfyProxy) {
    for (const method of ['get', 'post'] as const) {
      list.push({
        method,
        path: '/comfy/{path}',
        summary: "ComfyUI's own routes, passed through (COMFY_PROXY=true); websocket upgrades on /comfy/ws",
        tags: ['comfyui'],
        params: [docs.pathParam('path', "ComfyUI's route, e.g. object_info/KSampler")],
        responses: { default: { description: "ComfyUI's answer" } },
      });
    }
  }
  return list;
}

export function httpDoorDoc(opts: { comfyProxy: boolean }): DoorDoc {
  return {
    title: 'comfyui-worker: HTTP door',
    description:
      "The api-wrapper contract (/generate/sync, /generate, /result, /cancel, /queue-info) and the standalone job API (/run, /status, /stats, /admin/*) in front of ComfyUI. With API_KEY set every route but /health and /openapi.json needs 'Authorization: Bearer <API_KEY>'; /admin/* needs ADMIN_API_KEY when that is set.",
    routes: routes(opts.comfyProxy),
    bearer: true,
  };
}
