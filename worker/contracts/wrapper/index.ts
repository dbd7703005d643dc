// The ComfyUI API wrapper's contract (ai-dock comfyui-api-wrapper): modifiers, the Result envelope.
import type { Contract } from '../contract';
import { toWrapperResult, wrapperView } from './result';

export const WRAPPER = 'wrapper';

export const wrapperContract: Contract = {
  name: WRAPPER,
  statusResult: (job, fileData) => toWrapperResult(job, fileData),
  webhookView: wrapperView,
};
