// Pure rewrites of an API-format graph before it is submitted. Each returns a new graph.
import { z } from 'zod';
import { invalidField } from '../errors';
import { isObject } from '../util/objects';
import type { Workflow } from './types';

function mapInputs(workflow: Workflow, fn: (name: string, value: unknown) => unknown): Workflow {
  const out: Workflow = {};
  for (const [id, node] of Object.entries(workflow)) {
    const inputs: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(node.inputs ?? {})) inputs[name] = fn(name, value);
    out[id] = { ...node, inputs };
  }
  return out;
}

/**
 * Appends a per-job token to every `filename_prefix`, so a resubmitted identical workflow writes
 * fresh files instead of ComfyUI answering from cache with another job's old file names. A prefix
 * with a folder (`audio/clip`) keeps its folder.
 */
export function withUniquePrefix(workflow: Workflow, token: string): Workflow {
  return mapInputs(workflow, (name, value) =>
    name === 'filename_prefix' && typeof value === 'string' ? `${value}_${token}` : value,
  );
}

/** Replaces input values equal to an uploaded file's requested name with the name ComfyUI gave it. */
export function withUploadedNames(workflow: Workflow, references: Map<string, string>): Workflow {
  if ([...references].every(([requested, actual]) => requested === actual)) return workflow;
  return mapInputs(workflow, (_name, value) =>
    typeof value === 'string' && references.has(value) ? references.get(value) : value,
  );
}

/**
 * One node of an API-format workflow. `class_type` is not required here: a node without one is
 * left to ComfyUI, whose 400 says so in its own words.
 */
export const workflowNodeSchema = z.looseObject({
  class_type: z.unknown().optional().meta({ type: 'string', description: 'The node class, e.g. KSampler' }),
  inputs: z.record(z.string(), z.unknown()).optional().meta({ description: 'Values, or links [node id, output index]' }),
});

/** A workflow in ComfyUI's API format ("Export (API)"): node id → node. Checked by parseWorkflow. */
export const workflowSchema = z.record(z.string(), workflowNodeSchema).meta({
  description: 'A ComfyUI workflow in API format ("Export (API)"): node id → {class_type, inputs}',
  minProperties: 1,
});

/**
 * Where the API description (doors/openapi.ts) puts workflowSchema: request fields that take a
 * workflow but check it with parseWorkflow (empty values count as absent) point there.
 */
export const WORKFLOW_SCHEMA_REF = '#/components/schemas/Workflow';

/**
 * Checks that a client's workflow is an API-format graph (node id → {class_type, inputs}).
 * Deeper problems (unknown classes, bad links, bad values) are left to ComfyUI, whose 400 names
 * the node; this catches what ComfyUI would answer with a 500 or a confusing message.
 */
export function parseWorkflow(value: unknown, field: string): Workflow {
  if (!isObject(value)) throw invalidField(field, 'must be a JSON object (an API-format workflow: node id → node)');
  if (Array.isArray(value.nodes) && Array.isArray(value.links)) {
    throw invalidField(field, 'is a ComfyUI UI workflow (nodes/links); export it with "Export (API)" instead');
  }
  if (Object.keys(value).length === 0) throw invalidField(field, 'has no nodes');
  const workflow: Workflow = {};
  for (const [id, node] of Object.entries(value)) {
    const checked = workflowNodeSchema.safeParse(node);
    if (!isObject(node)) throw invalidField(`${field}.${id}`, 'must be an object with class_type and inputs');
    if (!checked.success) throw invalidField(`${field}.${id}.inputs`, 'must be an object');
    workflow[id] = { ...node, inputs: (node.inputs as Record<string, unknown> | undefined) ?? {} } as Workflow[string];
  }
  return workflow;
}
