// POST /run accepts three forms of body, so clients need not change shape between modes:
//   {"workflow": {...}, "images"?: [...]}                  the seed's form (top level)
//   {"input": {"workflow": {...}, "images"?: [...], ...}}  worker-comfyui's (RunPod) form
//   {"input": {"workflow_json" | "modifier", ...}}         the API-wrapper form, modifiers included
// The job remembers which, so /status answers in the shape it came in.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { invalidField } from '../../errors';
import { WORKER_COMFYUI, WRAPPER } from '../../contracts';
import type { ContractContext } from '../../contracts/context';
import type { JobSecrets, JobSpec } from '../../jobs/types';
import { isObject } from '../../util/objects';
import { parseWorkerComfyInput } from '../../contracts/worker-comfyui/input';
import { parseWrapperRequest } from '../../contracts/wrapper/request';

export interface RunRequest {
  id: string;
  /** The contract the job is answered in. */
  contract: string;
  spec: JobSpec;
  secrets: JobSecrets;
}

const WRAPPER_KEYS = ['workflow_json', 'modifier'];

export async function parseRunRequest(body: unknown, ctx: ContractContext, headers: IncomingHttpHeaders): Promise<RunRequest> {
  if (!isObject(body)) throw invalidField('body', 'must be a JSON object: {"workflow": {...}} or {"input": {...}}');
  const hasInput = 'input' in body;
  if (hasInput && 'workflow' in body) {
    throw invalidField('body', 'send "workflow" at the top level or inside "input", not both');
  }
  if (!hasInput) {
    if (!('workflow' in body)) throw invalidField('workflow', 'Missing \'workflow\' parameter (or send {"input": {...}})');
    const { spec, secrets } = await parseWorkerComfyInput(body, ctx, '');
    return { id: randomUUID(), contract: WORKER_COMFYUI, spec, secrets };
  }
  if (isObject(body.input) && WRAPPER_KEYS.some((key) => key in (body.input as object))) {
    const { id, spec, secrets } = await parseWrapperRequest(body, ctx, headers);
    return { id, contract: WRAPPER, spec, secrets };
  }
  const { spec, secrets } = await parseWorkerComfyInput(body.input, ctx, 'input', body.webhook);
  return { id: randomUUID(), contract: WORKER_COMFYUI, spec, secrets };
}
