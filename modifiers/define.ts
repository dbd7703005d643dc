// A modifier is a workflow template plus a typed map from request keys to template inputs. Adding
// one means adding two files here: `<name>.json` (the template) and `<name>.ts` (the map). This
// folder is data: it imports nothing of the worker; worker/contracts/wrapper/modifiers.ts loads it.
import { randomInt } from 'node:crypto';
import { z } from 'zod';

/** A workflow in ComfyUI's API format (the worker's own Workflow type has this shape). */
export type Template = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

export interface ModifierField {
  /** Node id in the template. */
  node: string;
  input: string;
  /** What a client may send for this key ("__RANDOM_INT__" is always accepted too). */
  schema: z.ZodType;
  /** Used when the key is absent; a function is called per request. */
  default: unknown;
}

export interface Modifier {
  name: string;
  template: Template;
  fields: Record<string, ModifierField>;
}

export function defineModifier(modifier: Modifier): Modifier {
  for (const [key, field] of Object.entries(modifier.fields)) {
    const node = modifier.template[field.node];
    if (!node || !(field.input in node.inputs)) {
      throw new Error(`modifier ${modifier.name}: ${key} maps to missing input ${field.node}.${field.input}`);
    }
  }
  return modifier;
}

/** A random seed like ComfyUI's own "randomize": 0 .. 2^32 - 1. */
export const randomSeed = (): number => randomInt(0, 2 ** 32);

export const fieldSchemas = {
  seed: z.number().int().min(0),
  steps: z.number().int().min(1).max(10000),
  text: z.string(),
  name: z.string().min(1),
  denoise: z.number().min(0).max(1),
  size: z.number().int().min(16).max(16384),
};
