// Pixel semantics of the simulated image nodes, in float32 like torch. Constant images stay
// exact (that is what the recorded prompts use); for non-constant images every resampling method
// is approximated by nearest-exact sampling.

import { PyException } from './pyvalues';
import { SimImage, SimMask } from './tensor';
import type { DecodedPng } from './png';

const f32 = Math.fround;

/** Python's round(): half to even. */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function emptyImage(width: number, height: number, batch: number, color: number): SimImage {
  return SimImage.filled(batch, height, width, [
    ((color >> 16) & 0xff) / 0xff,
    ((color >> 8) & 0xff) / 0xff,
    (color & 0xff) / 0xff,
  ]);
}

/** Applies f to every value, keeping constant-ness. */
export function mapValues(img: SimImage, f: (v: number) => number): SimImage {
  return new SimImage(
    img.batch,
    img.height,
    img.width,
    img.channels,
    (b, y, out) => {
      img.row(b, y, out);
      for (let k = 0; k < out.length; k++) out[k] = f32(f(out[k] ?? 0));
    },
    img.constant ? img.constant.map((v) => f32(f(v))) : null,
  );
}

export function invert(img: SimImage): SimImage {
  return mapValues(img, (v) => 1 - v);
}

/** uint8 round trip as PIL does it: clip(255 * v) truncated, then / 255. */
export function quantize(v: number): number {
  return f32(Math.trunc(Math.min(255, Math.max(0, f32(255 * v)))) / 255);
}

/** comfy.utils.common_upscale (+ ImageScale's 0-means-keep-aspect rule). */
export function scale(img: SimImage, method: string, widthIn: number, heightIn: number, crop: string): SimImage {
  if (widthIn === 0 && heightIn === 0) return img;
  let width = widthIn;
  let height = heightIn;
  if (width === 0) width = Math.max(1, pyRound((img.width * height) / img.height));
  else if (height === 0) height = Math.max(1, pyRound((img.height * width) / img.width));
  let x0 = 0;
  let y0 = 0;
  if (crop === 'center') {
    const oldAspect = img.width / img.height;
    const newAspect = width / height;
    if (oldAspect > newAspect) x0 = pyRound((img.width - img.width * (newAspect / oldAspect)) / 2);
    else if (oldAspect < newAspect) y0 = pyRound((img.height - img.height * (oldAspect / newAspect)) / 2);
  }
  const srcW = img.width - 2 * x0;
  const srcH = img.height - 2 * y0;
  const q = method === 'lanczos' ? quantize : (v: number): number => v;
  const ch = img.channels;
  const srcRow = new Float32Array(img.width * ch);
  const xs = Array.from({ length: width }, (_, x) => x0 + Math.min(srcW - 1, Math.floor(((x + 0.5) * srcW) / width)));
  return new SimImage(
    img.batch,
    height,
    width,
    ch,
    (b, y, out) => {
      img.row(b, y0 + Math.min(srcH - 1, Math.floor(((y + 0.5) * srcH) / height)), srcRow);
      for (let x = 0; x < width; x++) for (let c = 0; c < ch; c++) out[x * ch + c] = q(srcRow[(xs[x] ?? 0) * ch + c] ?? 0);
    },
    img.constant ? img.constant.map(q) : null,
  );
}

const BLEND_FRAMES_LINE: Record<string, number> = { multiply: 47, screen: 49, overlay: 51, soft_light: 53, difference: 55 };

function blendValue(a: number, b: number, mode: string): number {
  const g = (x: number): number => (x <= 0.25 ? ((16 * x - 12) * x + 4) * x : Math.sqrt(x));
  switch (mode) {
    case 'multiply':
      return a * b;
    case 'screen':
      return 1 - (1 - a) * (1 - b);
    case 'overlay':
      return a <= 0.5 ? 2 * a * b : 1 - 2 * (1 - a) * (1 - b);
    case 'soft_light':
      return b <= 0.5 ? a - (1 - 2 * b) * a * (1 - a) : a + (2 * b - 1) * (g(a) - a);
    case 'difference':
      return a - b;
    default:
      return b;
  }
}

/** ImageBlend. `frames` are the node's own traceback frames for the mismatch error. */
export function blend(img1: SimImage, img2In: SimImage, factor: number, mode: string, frames: string[]): SimImage {
  let img2 = img2In;
  if (img2.height !== img1.height || img2.width !== img1.width) img2 = scale(img2, 'bicubic', img1.width, img1.height, 'center');
  if (img1.batch !== img2.batch && img1.batch !== 1 && img2.batch !== 1) {
    // torch broadcasting error from the first binary op that mixes the two batches; in
    // soft_light that op has image2's side first.
    const [a, b] = mode === 'soft_light' ? [img2.batch, img1.batch] : [img1.batch, img2.batch];
    const line = BLEND_FRAMES_LINE[mode];
    const extra =
      line === undefined
        ? []
        : [
            `  File "/opt/ComfyUI/comfy_extras/nodes_post_processing.py", line ${line}, in blend_mode\n    <source line omitted from recording>\n`,
          ];
    throw new PyException(
      'RuntimeError',
      `The size of tensor a (${a}) must match the size of tensor b (${b}) at non-singleton dimension 0`,
      [...frames, ...extra],
    );
  }
  const batch = Math.max(img1.batch, img2.batch);
  const ch = img1.channels;
  const r1 = new Float32Array(img1.width * ch);
  const r2 = new Float32Array(img1.width * img2.channels);
  const mix = (a: number, b: number): number =>
    f32(Math.min(1, Math.max(0, f32(f32(a * f32(1 - factor)) + f32(f32(blendValue(a, b, mode)) * factor)))));
  const c1 = img1.constant;
  const c2 = img2.constant;
  return new SimImage(
    batch,
    img1.height,
    img1.width,
    ch,
    (b, y, out) => {
      img1.row(img1.batch === 1 ? 0 : b, y, r1);
      img2.row(img2.batch === 1 ? 0 : b, y, r2);
      for (let k = 0; k < out.length; k++) out[k] = mix(r1[k] ?? 0, r2[k] ?? 0);
    },
    c1 && c2 ? c1.map((v, k) => mix(v, c2[k] ?? 0)) : null,
  );
}

/** Row y of image b as 8-bit RGB, the way SaveImage converts (255 * v clipped and truncated). */
export function rgbBytes(img: SimImage, b: number): Buffer {
  const out = Buffer.alloc(img.width * img.height * 3);
  const row = new Float32Array(img.width * img.channels);
  for (let y = 0; y < img.height; y++) {
    img.row(b, y, row);
    for (let x = 0; x < img.width; x++) {
      for (let c = 0; c < 3; c++) {
        const v = f32(255 * (row[x * img.channels + Math.min(c, img.channels - 1)] ?? 0));
        out[(y * img.width + x) * 3 + c] = Math.trunc(Math.min(255, Math.max(0, v)));
      }
    }
  }
  return out;
}

/** LoadImage's IMAGE and MASK from a decoded PNG. */
export function fromDecoded(png: DecodedPng): { image: SimImage; mask: SimMask } {
  const { width, height, rgba } = png;
  const image = new SimImage(
    1,
    height,
    width,
    3,
    (_b, y, out) => {
      for (let x = 0; x < width; x++)
        for (let c = 0; c < 3; c++) out[x * 3 + c] = f32((rgba[(y * width + x) * 4 + c] ?? 0) / 255);
    },
    null,
  );
  const mask = png.hasAlpha
    ? new SimMask(1, height, width, (_b, y, x) => f32(1 - f32((rgba[(y * width + x) * 4 + 3] ?? 255) / 255)))
    : new SimMask(1, 64, 64, () => 0);
  return { image, mask };
}

/** A deterministic colour for VAEDecode output, so different seeds give different pictures. */
export function seedColor(seed: bigint | null): number[] {
  if (seed === null) return [0.5, 0.5, 0.5];
  let h = Number(BigInt.asUintN(32, seed ^ (seed >> 32n))) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return [(h & 0xff) / 255, ((h >>> 8) & 0xff) / 255, ((h >>> 16) & 0xff) / 255];
}
