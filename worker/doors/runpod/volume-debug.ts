// NETWORK_VOLUME_DEBUG=true: what the network volume holds, so "value not in list: ckpt_name" can
// be diagnosed from the log (worker-comfyui's network-volume report). Logged at startup and again
// whenever a job fails because a model is missing. Model folders follow worker-comfyui's
// extra_model_paths.yaml: <volume>/models/<type>/ (a volume is /runpod-volume on serverless,
// /workspace on a Pod); files with another extension are listed as ignored, since ComfyUI does
// not offer them.
import fs from 'node:fs';
import path from 'node:path';
import type { JobRecord } from '../../jobs/types';
import { isObject } from '../../util/objects';

export const MODEL_EXTENSIONS: Readonly<Record<string, readonly string[]>> = {
  checkpoints: ['.safetensors', '.ckpt', '.pt', '.pth', '.bin'],
  clip: ['.safetensors', '.pt', '.bin'],
  clip_vision: ['.safetensors', '.pt', '.bin'],
  configs: ['.yaml', '.json'],
  controlnet: ['.safetensors', '.pt', '.pth', '.bin'],
  embeddings: ['.safetensors', '.pt', '.bin'],
  loras: ['.safetensors', '.pt'],
  upscale_models: ['.safetensors', '.pt', '.pth'],
  vae: ['.safetensors', '.pt', '.bin'],
  unet: ['.safetensors', '.pt', '.bin'],
};

export const EXTRA_MODEL_PATHS_FILE = '/comfyui/extra_model_paths.yaml';
/** Per folder, so a volume with thousands of files still gives a readable log line. */
const MAX_LISTED = 200;
const MAX_DEPTH = 4;

export interface ModelFolder {
  path: string;
  exists: boolean;
  files: Array<{ name: string; mb: number }>;
  /** Files ComfyUI will not offer for this type: "ignored - invalid extension". */
  ignored: string[];
  truncated?: true;
}

export interface VolumeReport {
  volume: string;
  mounted: boolean;
  extraModelPaths: { path: string; present: boolean; content?: string };
  models: { path: string; exists: boolean };
  types: Record<string, ModelFolder>;
  expected: string;
}

function walk(dir: string, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH || out.length > MAX_LISTED * 2) return;
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of names.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, depth + 1, out);
    else out.push(full);
  }
}

function folder(dir: string, extensions: readonly string[]): ModelFolder {
  const result: ModelFolder = { path: dir, exists: fs.existsSync(dir), files: [], ignored: [] };
  if (!result.exists) return result;
  const found: string[] = [];
  walk(dir, 0, found);
  for (const file of found) {
    const name = path.relative(dir, file);
    if (!extensions.includes(path.extname(file).toLowerCase())) {
      if (result.ignored.length < MAX_LISTED) result.ignored.push(name);
      continue;
    }
    if (result.files.length >= MAX_LISTED) {
      result.truncated = true;
      continue;
    }
    let bytes = 0;
    try {
      bytes = fs.statSync(file).size;
    } catch {
      // vanished while listing
    }
    result.files.push({ name, mb: Math.round((bytes / 1024 / 1024) * 100) / 100 });
  }
  return result;
}

export function volumeReport(volume: string, extraModelPathsFile = EXTRA_MODEL_PATHS_FILE): VolumeReport {
  const modelsDir = path.join(volume, 'models');
  const yaml: VolumeReport['extraModelPaths'] = { path: extraModelPathsFile, present: fs.existsSync(extraModelPathsFile) };
  if (yaml.present) {
    try {
      yaml.content = fs.readFileSync(extraModelPathsFile, 'utf8').slice(0, 4096);
    } catch {
      // present but unreadable: said by the missing content
    }
  }
  const types: Record<string, ModelFolder> = {};
  for (const [type, extensions] of Object.entries(MODEL_EXTENSIONS)) types[type] = folder(path.join(modelsDir, type), extensions);
  return {
    volume,
    mounted: fs.existsSync(volume),
    extraModelPaths: yaml,
    models: { path: modelsDir, exists: fs.existsSync(modelsDir) },
    types,
    expected: `${modelsDir}/<type>/ with <type> one of ${Object.keys(MODEL_EXTENSIONS).join(', ')}`,
  };
}

/**
 * A job that failed because ComfyUI does not offer a model it names: a value_not_in_list on a
 * `*_name` input (ckpt_name, lora_name, vae_name ...). Returns the inputs at fault.
 */
export function missingModelInputs(job: JobRecord): string[] {
  const details = job.error?.code === 'comfy_validation' ? job.error.details : undefined;
  if (!isObject(details) || !isObject(details.node_errors)) return [];
  const inputs: string[] = [];
  for (const entry of Object.values(details.node_errors)) {
    if (!isObject(entry) || !Array.isArray(entry.errors)) continue;
    for (const item of entry.errors) {
      if (!isObject(item) || item.type !== 'value_not_in_list' || !isObject(item.extra_info)) continue;
      const name = item.extra_info.input_name;
      if (typeof name === 'string' && name.endsWith('_name')) inputs.push(name);
    }
  }
  return inputs;
}
