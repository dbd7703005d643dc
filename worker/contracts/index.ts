// Every contract, registered in one place. Adding a contract: a folder beside these with its
// parser and views, and one line here.
import { WorkerError } from '../errors';
import type { Contract } from './contract';
import { workerComfyContract } from './worker-comfyui';
import { wrapperContract } from './wrapper';

const CONTRACTS: ReadonlyMap<string, Contract> = new Map([wrapperContract, workerComfyContract].map((c) => [c.name, c]));

export function contractOf(name: string): Contract {
  const contract = CONTRACTS.get(name);
  if (!contract) throw new WorkerError(500, 'internal', `a job names an unknown contract "${name}"`);
  return contract;
}

export type { Contract, FileData } from './contract';
export { WORKER_COMFYUI } from './worker-comfyui';
export { WRAPPER } from './wrapper';
// The workflow's shape, for the API description (doors do not reach the ComfyUI client's modules).
export { WORKFLOW_SCHEMA_REF, workflowSchema } from '../comfy/workflow';
