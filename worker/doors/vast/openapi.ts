// The Vast door's routes for its API description (doors/openapi.ts builds the document): the
// PyWorker envelope around the api-wrapper request, and the door's health, ping and benchmark.
import { z } from 'zod';
import { wrapperRequestSchema } from '../../contracts/wrapper/request';
import { wrapperResultSchema } from '../../contracts/wrapper/result';
import { OPENAPI_ROUTE, docs, type DoorDoc } from '../openapi';
import { envelopeSchema } from './envelope';

const ENVELOPE_EXAMPLE = {
  auth_data: {
    cost: 1.0,
    endpoint: 'my-endpoint',
    reqnum: 4,
    request_idx: 35,
    signature: 'c2lnbmF0dXJl',
    url: 'https://120.238.149.138:26172',
  },
  session_id: null,
  payload: { input: { modifier: 'Text2Image', modifications: { prompt: 'a lighthouse at dusk', seed: 42 } } },
};

const healthSchema = z.looseObject({
  status: z.enum(['healthy', 'unhealthy', 'loading', 'error']),
  loaded: z.boolean(),
  error_msg: z.string(),
  benchmark: z.string(),
  max_perf: z.number(),
  cur_load: z.number(),
  num_requests_working: z.number().int(),
  estimated_wait_s: z.number(),
  max_queue_time_s: z.number(),
  signature_scheme: z.string(),
  public_key_loaded: z.boolean(),
  comfyui: z.looseObject({ url: z.string() }),
});

const pyworkerError = z.record(z.string(), z.unknown()).meta({
  description: 'PyWorker\'s 422 body: {"error": "invalid JSON"} or a map from field to problem',
});

export function vastDoorDoc(): DoorDoc {
  return {
    title: 'comfyui-worker: Vast.ai door',
    description:
      "Vast's PyWorker protocol: signed requests from the serverless autoscaler around an api-wrapper request, answered with the api-wrapper's Result.",
    routes: [
      OPENAPI_ROUTE,
      {
        method: 'post',
        path: '/generate/sync',
        summary: 'Run an api-wrapper request inside the PyWorker envelope and answer with its Result',
        tags: ['pyworker'],
        body: { schema: envelopeSchema.extend({ payload: wrapperRequestSchema }), examples: { envelope: ENVELOPE_EXAMPLE } },
        responses: {
          '200': { description: 'completed', body: { schema: wrapperResultSchema } },
          '400': docs.error("the payload's own mistake, naming the field"),
          '401': { description: 'the signature does not verify, is replayed, or the public key is not loaded (empty body)' },
          '410': { description: 'a non-null session_id', body: { schema: z.object({ error: z.string() }) } },
          '422': { description: 'malformed envelope', body: { schema: pyworkerError } },
          '429': { description: 'the estimated wait is above MAX_QUEUE_TIME (empty body)' },
          '500': { description: 'the job failed (failed Result; also 502, 504)', body: { schema: wrapperResultSchema } },
          '503': { description: 'the worker is in error state', body: { schema: z.object({ error: z.string() }) } },
        },
      },
      {
        method: 'get',
        path: '/health',
        summary: 'Loaded, not in error, and ComfyUI reachable',
        tags: ['operations'],
        responses: {
          '200': {
            description: 'healthy',
            body: { schema: healthSchema },
          },
          '503': { description: 'loading, in error, or ComfyUI unreachable', body: { schema: healthSchema } },
        },
      },
      {
        method: 'get',
        path: '/ping',
        summary: 'Liveness',
        tags: ['operations'],
        responses: { '200': docs.text('pong', 'pong') },
      },
      {
        method: 'get',
        path: '/benchmark',
        summary: 'The startup benchmark: status, runs and max_perf',
        tags: ['operations'],
        responses: {
          '200': {
            description: 'the benchmark',
            body: {
              schema: z.looseObject({
                status: z.enum(['pending', 'running', 'done', 'cached', 'failed']),
                max_perf: z.number().optional(),
                error: z.string().optional(),
              }),
              examples: { done: { status: 'done', max_perf: 0.4213, workflow: 'Text2Image (SD1.5) 512x512, 20 steps' } },
            },
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
    ],
  };
}
