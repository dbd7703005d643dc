// RunPod worker-comfyui's contract: {workflow, images} in, {images: [...]} out.
import type { Contract } from '../contract';
import { toWorkerComfyOutput, workerComfyView } from './output';

export const WORKER_COMFYUI = 'worker-comfyui';

export const workerComfyContract: Contract = {
  name: WORKER_COMFYUI,
  statusResult: (job, fileData) => (job.result === null ? null : toWorkerComfyOutput(job.result, fileData)),
  webhookView: workerComfyView,
};
