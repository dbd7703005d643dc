// Comparison helpers for replaying recorded ComfyUI traffic. Only what legitimately differs
// between two runs is normalised: ids we minted (prompt ids, client ids), timestamps, and, when
// the target is a real server rather than a fresh simulator, the prompt counter, file counters
// and the order of Python sets (executed, current_outputs). Everything else must be equal.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Folder with the recordings: $COMFY_TRACES_DIR or shared/comfy-traces beside the repository. */
export const TRACES_DIR = process.env['COMFY_TRACES_DIR'] ?? resolve(__dirname, '../../../shared/comfy-traces');

export function trace<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(join(TRACES_DIR, name), 'utf8')) as T;
}

export function traceBytes(name: string): Buffer {
  return readFileSync(join(TRACES_DIR, name));
}

export interface Normalizer {
  /** Exact string values (and object keys) to replace, e.g. prompt id -> "<prompt:success>". */
  readonly ids: Map<string, string>;
  /** Comparing against a real server: also normalise counters and Python set order. */
  readonly live: boolean;
}

export function normalizer(live: boolean, ids: Record<string, string> = {}): Normalizer {
  return { ids: new Map(Object.entries(ids)), live };
}

/** The same normalizer with more ids. */
export function withIds(n: Normalizer, ids: Record<string, string>): Normalizer {
  return { ids: new Map([...n.ids, ...Object.entries(ids)]), live: n.live };
}

const SET_KEYS = new Set(['executed', 'current_outputs']);

function normString(s: string, n: Normalizer): string {
  const id = n.ids.get(s);
  if (id !== undefined) return id;
  // A real server's output folder may already hold files with the same prefix.
  return n.live ? s.replace(/_\d{5,}_\.(png|webp)$/, '_#####_.$1') : s;
}

export function normalize(v: unknown, n: Normalizer, key?: string): unknown {
  if (typeof v === 'string') return normString(v, n);
  if (Array.isArray(v)) {
    let out = v.map((x) => normalize(x, n));
    if (n.live && key !== undefined && SET_KEYS.has(key)) out = [...out].sort();
    // History and queue items: [number, prompt_id, prompt, extra_data, outputs].
    if (n.live && key === 'prompt' && typeof v[0] === 'number' && typeof v[1] === 'string') out[0] = '<number>';
    return out;
  }
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'timestamp' && typeof x === 'number') out[k] = '<timestamp>';
      else if (k === 'number' && n.live && typeof x === 'number') out[k] = '<number>';
      else out[normString(k, n)] = normalize(x, n, k);
    }
    return out;
  }
  return v;
}

/** A websocket message as recorded: {type, data}. */
export interface WsMessage {
  type: string;
  data: Record<string, unknown>;
}

/** Types of a value tree (for shape-only comparisons such as /system_stats). */
export function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.length > 0 ? [shape(v[0])] : [];
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]));
  return v === null ? 'null' : typeof v;
}

/** A 64x48 test picture and its mirror image (the recorded upload's size). */
export function uploadFixture(encode: (o: { width: number; height: number; rgb: Buffer }) => Buffer): {
  original: Buffer;
  mirrored: Buffer;
} {
  const w = 64;
  const h = 48;
  const rgb = Buffer.alloc(w * h * 3);
  const mirrored = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const px = [(x * 4) & 0xff, (y * 5) & 0xff, ((x + y) * 3) & 0xff];
      rgb.set(px, (y * w + x) * 3);
      mirrored.set(px, (y * w + (w - 1 - x)) * 3);
    }
  }
  return { original: encode({ width: w, height: h, rgb }), mirrored: encode({ width: w, height: h, rgb: mirrored }) };
}

/** Byte-level normalisation of a raw frame or body: our ids to placeholders, timestamps to 0,
 *  and (live) file counters. */
export function normalizeRaw(text: string, n: Normalizer): string {
  let out = text.replace(/"timestamp": \d+/g, '"timestamp": 0');
  for (const [k, v] of n.ids) out = out.split(JSON.stringify(k)).join(JSON.stringify(v));
  if (n.live) out = out.replace(/_\d{5,}_\.(png|webp)"/g, '_#####_.$1"').replace(/"number": -?\d+(\.\d+)?/g, '"number": 0');
  return out;
}
