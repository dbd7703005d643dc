// The RunPod door's local test API (SERVE_API_LOCALLY=true) for its API description
// (doors/openapi.ts builds the document). Every job route is also served under
// /v2/{endpointId}/, as RunPod's hosted API has it. The serverless loop serves no HTTP.
import { z } from 'zod';
import { workerComfyInputSchema } from '../../contracts/worker-comfyui/input';
import { OPENAPI_ROUTE, docs, type DoorDoc, type RouteDoc } from '../openapi';

const STATUSES = z.enum(['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

const jobViewSchema = z.object({
  id: z.string(),
  status: STATUSES,
  delayTime: z.number().int().optional().meta({ description: 'ms queued' }),
  executionTime: z.number().int().optional().meta({ description: 'ms running' }),
  output: z.unknown().optional().meta({ description: "worker-comfyui's output; while running, the progress" }),
  error: z.string().optional(),
});

const jobBodySchema = z.object({
  input: z.union([workerComfyInputSchema, z.string().meta({ description: 'the input as a JSON text' })]),
  webhook: z.string().optional().meta({ description: "Receives the job's /status body when it ends" }),
});

const EXAMPLE_INPUT = {
  input: {
    workflow: {
      '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: 255 } },
      '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'ComfyUI' } },
    },
  },
};
const ID = '550e8400-e29b-41d4-a716-446655440000';

const view = (description: string, example?: unknown) => ({
  description,
  body: { schema: jobViewSchema, ...(example !== undefined ? { examples: { job: example } } : {}) },
});
const notFound = view('unknown id (status FAILED, "Job ID not found")', { id: ID, status: 'FAILED', error: 'Job ID not found' });
const idParam = docs.pathParam('id', 'the job id');

function jobRoutes(): RouteDoc[] {
  return [
    {
      method: 'post',
      path: '/run',
      summary: 'Queue a job',
      body: { schema: jobBodySchema, examples: { workflow: EXAMPLE_INPUT } },
      responses: {
        '200': view('queued (FAILED at once for an input worker-comfyui refuses)', { id: ID, status: 'IN_QUEUE' }),
        '400': { description: 'not a JSON object, or a bad webhook URL', body: { schema: z.object({ error: z.string() }) } },
      },
    },
    {
      method: 'post',
      path: '/runsync',
      summary: 'Run a job and wait for it (up to wait ms), else answer its status',
      params: [{ name: 'wait', in: 'query', description: 'ms to wait: 1000 to 300000, default 90000', schema: z.string() }],
      body: { schema: jobBodySchema, examples: { workflow: EXAMPLE_INPUT } },
      responses: {
        '200': view('the job', {
          id: `sync-${ID}`,
          status: 'COMPLETED',
          delayTime: 12,
          executionTime: 230,
          output: { images: [{ filename: 'ComfyUI_00001_.png', type: 'base64', data: 'iVBORw0KGgo=' }] },
        }),
      },
    },
    ...(['get', 'post'] as const).map((method): RouteDoc => ({
      method,
      path: '/status/{id}',
      summary: "A job's status, output or progress",
      params: [idParam],
      responses: { '200': view('the job'), '404': notFound },
    })),
    {
      method: 'post',
      path: '/cancel/{id}',
      summary: 'Cancel a queued or running job',
      params: [idParam],
      responses: { '200': view('cancelled, or the status of an ended job', { id: ID, status: 'CANCELLED' }), '404': notFound },
    },
    {
      method: 'post',
      path: '/retry/{id}',
      summary: 'Run a FAILED or TIMED_OUT job again with the same id and input',
      params: [idParam],
      responses: {
        '200': view('queued again', { id: ID, status: 'IN_QUEUE' }),
        '400': view('the job is not FAILED or TIMED_OUT'),
        '404': notFound,
      },
    },
    {
      method: 'post',
      path: '/purge-queue',
      summary: 'Cancel the queued jobs (the running one continues)',
      responses: {
        '200': {
          description: 'removed',
          body: {
            schema: z.object({ removed: z.number().int(), status: z.literal('completed') }),
            examples: { removed: { removed: 2, status: 'completed' } },
          },
        },
      },
    },
    {
      method: 'get',
      path: '/health',
      summary: 'Job counts and worker state, as the hosted API has them',
      responses: {
        '200': {
          description: 'counts',
          body: {
            schema: z.object({
              jobs: z.object({
                completed: z.number().int(),
                failed: z.number().int(),
                inProgress: z.number().int(),
                inQueue: z.number().int(),
                retried: z.number().int(),
              }),
              workers: z.object({ idle: z.number().int(), running: z.number().int(), initializing: z.number().int() }),
            }),
          },
        },
      },
    },
  ];
}

export function runpodLocalDoc(): DoorDoc {
  const routes = jobRoutes();
  const hosted = routes.map((route): RouteDoc => ({
    ...route,
    path: `/v2/{endpointId}${route.path}`,
    params: [docs.pathParam('endpointId', 'any RunPod endpoint id (ignored)'), ...(route.params ?? [])],
    tags: ['hosted-paths'],
  }));
  return {
    title: 'comfyui-worker: RunPod local test API',
    description:
      "RunPod's hosted endpoint API (SERVE_API_LOCALLY=true) in front of worker-comfyui's job input and output; also under /v2/{endpointId}/.",
    routes: [
      OPENAPI_ROUTE,
      ...routes.map((route) => ({ ...route, tags: ['jobs'] })),
      ...hosted,
      {
        method: 'get',
        path: '/metrics',
        summary: 'Prometheus metrics',
        tags: ['operations'],
        responses: { '200': docs.text('Prometheus text format') },
      },
    ],
  };
}
