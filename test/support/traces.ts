// Reads the recorded ComfyUI traces in ../shared/comfy-traces (beside this repository).
import fs from 'node:fs';
import path from 'node:path';

export const TRACES_DIR = path.resolve(__dirname, '..', '..', '..', 'shared', 'comfy-traces');

export function trace<T = unknown>(name: string): T {
  return JSON.parse(fs.readFileSync(path.join(TRACES_DIR, name), 'utf8')) as T;
}

/** The single history entry inside a recorded `{prompt_id: entry}` body. */
export function historyEntry<T = Record<string, unknown>>(name: string): T {
  const body = trace<Record<string, T>>(name);
  const first = Object.values(body)[0];
  if (first === undefined) throw new Error(`${name} has no entry`);
  return first;
}
