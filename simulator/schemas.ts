// Node schemas as GET /object_info shows them. The nine recorded classes come verbatim from
// recorded/object_info_used_nodes.json; the others are written here from ComfyUI's source and
// are NOT recorded (marked below). Dynamic combo lists (LoadImage files, checkpoint names) are
// filled in per request, as ComfyUI computes INPUT_TYPES on every call.

import { z } from 'zod';
import recordedObjectInfo from './recorded/object_info_used_nodes.json';
import { PyFloat } from '../worker/util/pyjson';

export type InputType = string | string[];
export type InputSpec = [InputType] | [InputType, Record<string, unknown>];

/** One entry of GET /object_info. */
export interface ObjectInfoEntry {
  input: {
    required?: Record<string, InputSpec>;
    optional?: Record<string, InputSpec>;
    hidden?: Record<string, string>;
  };
  input_order?: Record<string, string[]>;
  output: string[];
  output_is_list?: boolean[];
  output_name?: string[];
  name: string;
  display_name?: string | null;
  description?: string;
  python_module?: string;
  category?: string;
  output_node: boolean;
  [extra: string]: unknown;
}

const inputSpec = z.union([
  z.tuple([z.union([z.string(), z.array(z.string())])]),
  z.tuple([z.union([z.string(), z.array(z.string())]), z.record(z.string(), z.unknown())]),
]);

/** Checks an entry given by a test (SimNodeDef.schema) or loaded from the recording. */
export const objectInfoEntrySchema = z
  .object({
    input: z
      .object({
        required: z.record(z.string(), inputSpec).optional(),
        optional: z.record(z.string(), inputSpec).optional(),
        hidden: z.record(z.string(), z.string()).optional(),
      })
      .loose(),
    input_order: z.record(z.string(), z.array(z.string())).optional(),
    output: z.array(z.string()),
    output_is_list: z.array(z.boolean()).optional(),
    output_name: z.array(z.string()).optional(),
    name: z.string(),
    display_name: z.string().nullable().optional(),
    description: z.string().optional(),
    python_module: z.string().optional(),
    category: z.string().optional(),
    output_node: z.boolean(),
  })
  .loose();

/** Checks the shape; returns the value itself because zod's output reorders keys (and
 *  /object_info key order is part of what we reproduce). */
export function parseObjectInfoEntry(v: unknown): ObjectInfoEntry {
  objectInfoEntrySchema.parse(v);
  return v as ObjectInfoEntry;
}

/** Fills defaults ComfyUI's node_info() would add, for entries written by tests. */
export function completeEntry(name: string, e: ObjectInfoEntry): ObjectInfoEntry {
  const order: Record<string, string[]> = {};
  for (const k of ['required', 'optional', 'hidden'] as const) {
    const group = e.input[k];
    if (group) order[k] = Object.keys(group);
  }
  return {
    ...e,
    input_order: e.input_order ?? order,
    output_is_list: e.output_is_list ?? e.output.map(() => false),
    output_name: e.output_name ?? [...e.output],
    name: e.name || name,
    display_name: e.display_name === undefined ? name : e.display_name,
    description: e.description ?? '',
    python_module: e.python_module ?? 'custom_nodes',
    category: e.category ?? 'sd',
  };
}

const FLOAT_KEYS = ['default', 'min', 'max', 'step', 'round'];

/** Python writes FLOAT widget bounds as floats (8.0, 0.0); JSON import made them JS integers. */
function markFloats(e: ObjectInfoEntry): ObjectInfoEntry {
  for (const group of [e.input.required, e.input.optional]) {
    for (const spec of Object.values(group ?? {})) {
      const opts = spec[1];
      if (spec[0] !== 'FLOAT' || !opts) continue;
      for (const k of FLOAT_KEYS) {
        const v = opts[k];
        if (typeof v === 'number') opts[k] = new PyFloat(v);
      }
    }
  }
  return e;
}

/** Deep copy of a schema (entries are handed out per request and patched). */
export function cloneEntry(e: ObjectInfoEntry): ObjectInfoEntry {
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (v instanceof PyFloat || typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)]));
  };
  return copy(e) as ObjectInfoEntry;
}

function recorded(name: string): ObjectInfoEntry {
  const all = recordedObjectInfo as Record<string, unknown>;
  const e = markFloats(parseObjectInfoEntry(cloneEntry(all[name] as ObjectInfoEntry)));
  if (name === 'KSampler') {
    // The recording says 18446744073709551615 (0xffffffffffffffff); JSON import rounds it to 2**64.
    const seed = e.input.required?.['seed']?.[1];
    if (seed) seed['max'] = 0xffffffffffffffffn;
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// NOT RECORDED: written from ComfyUI's node definitions of that era (nodes.py and comfy_extras).

const notRecorded: Record<string, ObjectInfoEntry> = {
  CLIPTextEncode: {
    input: {
      required: {
        text: ['STRING', { multiline: true, dynamicPrompts: true, tooltip: 'The text to be encoded.' }],
        clip: ['CLIP', { tooltip: 'The CLIP model used for encoding the text.' }],
      },
    },
    input_order: { required: ['text', 'clip'] },
    output: ['CONDITIONING'],
    output_is_list: [false],
    output_name: ['CONDITIONING'],
    name: 'CLIPTextEncode',
    display_name: 'CLIP Text Encode (Prompt)',
    description:
      'Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images.',
    python_module: 'nodes',
    category: 'conditioning',
    output_node: false,
    output_tooltips: ['A conditioning containing the embedded text used to guide the diffusion model.'],
  },
  VAEDecode: {
    input: {
      required: {
        samples: ['LATENT', { tooltip: 'The latent to be decoded.' }],
        vae: ['VAE', { tooltip: 'The VAE model used for decoding the latent.' }],
      },
    },
    input_order: { required: ['samples', 'vae'] },
    output: ['IMAGE'],
    output_is_list: [false],
    output_name: ['IMAGE'],
    name: 'VAEDecode',
    display_name: 'VAE Decode',
    description: 'Decodes latent images back into pixel space images.',
    python_module: 'nodes',
    category: 'latent',
    output_node: false,
    output_tooltips: ['The decoded image.'],
  },
  VAEEncode: {
    input: { required: { pixels: ['IMAGE'], vae: ['VAE'] } },
    input_order: { required: ['pixels', 'vae'] },
    output: ['LATENT'],
    output_is_list: [false],
    output_name: ['LATENT'],
    name: 'VAEEncode',
    display_name: 'VAE Encode',
    description: '',
    python_module: 'nodes',
    category: 'latent',
    output_node: false,
  },
  EmptyLatentImage: {
    input: {
      required: {
        width: ['INT', { default: 512, min: 16, max: 16384, step: 8, tooltip: 'The width of the latent images in pixels.' }],
        height: ['INT', { default: 512, min: 16, max: 16384, step: 8, tooltip: 'The height of the latent images in pixels.' }],
        batch_size: ['INT', { default: 1, min: 1, max: 4096, tooltip: 'The number of latent images in the batch.' }],
      },
    },
    input_order: { required: ['width', 'height', 'batch_size'] },
    output: ['LATENT'],
    output_is_list: [false],
    output_name: ['LATENT'],
    name: 'EmptyLatentImage',
    display_name: 'Empty Latent Image',
    description: 'Create a new batch of empty latent images to be denoised via sampling.',
    python_module: 'nodes',
    category: 'latent',
    output_node: false,
    output_tooltips: ['The empty latent image batch.'],
  },
  SaveAnimatedWEBP: {
    // A v3 node in this ComfyUI (comfy_extras/nodes_images.py): options-style COMBO, v3 flags.
    input: {
      required: {
        images: ['IMAGE', {}],
        filename_prefix: ['STRING', { default: 'ComfyUI', multiline: false }],
        fps: ['FLOAT', { default: 6.0, min: 0.01, max: 1000.0, step: 0.01 }],
        lossless: ['BOOLEAN', { default: true }],
        quality: ['INT', { default: 80, min: 0, max: 100 }],
        method: ['COMBO', { multiselect: false, options: ['default', 'fastest', 'slowest'] }],
      },
      hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
    },
    input_order: {
      required: ['images', 'filename_prefix', 'fps', 'lossless', 'quality', 'method'],
      hidden: ['prompt', 'extra_pnginfo'],
    },
    output: [],
    output_is_list: [],
    output_name: [],
    output_tooltips: [],
    name: 'SaveAnimatedWEBP',
    display_name: null,
    description: '',
    python_module: 'comfy_extras.nodes_images',
    category: 'image/animation',
    output_node: true,
    deprecated: false,
    experimental: false,
    api_node: false,
  },
  // A custom node (github.com/Kosinkadink/ComfyUI-VideoHelperSuite, videohelpersuite/nodes.py),
  // present when VideoHelperSuite is installed; written from its source, NOT recorded. The
  // format list is what it offers with ffmpeg available (a subset of its video formats).
  VHS_VideoCombine: {
    input: {
      required: {
        images: ['IMAGE'],
        frame_rate: ['FLOAT', { default: 8, min: 1, step: 1 }],
        loop_count: ['INT', { default: 0, min: 0, max: 100, step: 1 }],
        filename_prefix: ['STRING', { default: 'AnimateDiff' }],
        format: [['image/gif', 'image/webp', 'video/h264-mp4', 'video/h265-mp4', 'video/webm']],
        pingpong: ['BOOLEAN', { default: false }],
        save_output: ['BOOLEAN', { default: true }],
      },
      optional: { audio: ['AUDIO'], meta_batch: ['VHS_BatchManager'], vae: ['VAE'] },
      hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO', unique_id: 'UNIQUE_ID' },
    },
    input_order: {
      required: ['images', 'frame_rate', 'loop_count', 'filename_prefix', 'format', 'pingpong', 'save_output'],
      optional: ['audio', 'meta_batch', 'vae'],
      hidden: ['prompt', 'extra_pnginfo', 'unique_id'],
    },
    output: ['VHS_FILENAMES'],
    output_is_list: [false],
    output_name: ['Filenames'],
    name: 'VHS_VideoCombine',
    display_name: 'Video Combine 🎥🅥🅗🅢',
    description: '',
    python_module: 'custom_nodes.ComfyUI-VideoHelperSuite',
    category: 'Video Helper Suite 🎥🅥🅗🅢',
    output_node: true,
  },
  PreviewAny: {
    input: { required: { source: ['*', {}] } },
    input_order: { required: ['source'] },
    output: [],
    output_is_list: [],
    output_name: [],
    name: 'PreviewAny',
    display_name: 'Preview Any',
    description: '',
    python_module: 'comfy_extras.nodes_preview_any',
    category: 'utils',
    output_node: true,
  },
};

/** Built-in classes in ComfyUI's NODE_CLASS_MAPPINGS order (nodes.py first, then extras). */
export const BUILTIN_ORDER = [
  'KSampler',
  'CheckpointLoaderSimple',
  'CLIPTextEncode',
  'VAEDecode',
  'VAEEncode',
  'EmptyLatentImage',
  'SaveImage',
  'PreviewImage',
  'LoadImage',
  'ImageScale',
  'ImageInvert',
  'EmptyImage',
  'ImageBlend',
  'SaveAnimatedWEBP',
  'PreviewAny',
  // custom nodes load after ComfyUI's own
  'VHS_VideoCombine',
] as const;

export type BuiltinName = (typeof BUILTIN_ORDER)[number];

const RECORDED = new Set([
  'EmptyImage',
  'SaveImage',
  'PreviewImage',
  'LoadImage',
  'ImageInvert',
  'ImageScale',
  'ImageBlend',
  'KSampler',
  'CheckpointLoaderSimple',
]);

/** Fresh copies of all built-in schemas (static parts). */
export function builtinSchemas(): Map<BuiltinName, ObjectInfoEntry> {
  const out = new Map<BuiltinName, ObjectInfoEntry>();
  for (const name of BUILTIN_ORDER) {
    const base = notRecorded[name];
    out.set(name, RECORDED.has(name) ? recorded(name) : markFloats(cloneEntry(base as ObjectInfoEntry)));
  }
  return out;
}

/** Values of a combo input in either form: [[...], {...}] or ["COMBO", {options: [...]}]. */
export function comboOptions(spec: InputSpec): unknown[] | null {
  if (Array.isArray(spec[0])) return spec[0];
  if (spec[0] === 'COMBO') {
    const opts = spec[1]?.['options'];
    return Array.isArray(opts) ? opts : [];
  }
  return null;
}
