// A job is answered in the shape of the contract it came in: the api-wrapper's Result (its own
// routes, the Vast door, the benchmark) or worker-comfyui's output object (the seed's /run and the
// RunPod door). One place decides it for /status, /result and webhooks.
import type { Door } from '../jobs/types';

export type AnswerShape = 'wrapper' | 'worker-comfyui';

export function answerShape(door: Door): AnswerShape {
  return door === 'http' || door === 'runpod' ? 'worker-comfyui' : 'wrapper';
}
