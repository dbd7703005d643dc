// Tensor-ish values passed between simulated nodes. Images are lazy (row generators) so a
// 4096x4096 batch costs nothing until a node actually writes it, and constant images (EmptyImage
// and everything derived from it) print and save exactly like torch/PIL would.

import { formatExp, formatFixed, type PyReprable } from './pyvalues';

const f32 = Math.fround;

export type RowFn = (b: number, y: number, out: Float32Array) => void;

/** An IMAGE: torch float32 tensor of shape [batch, height, width, channels], values 0..1. */
export class SimImage implements PyReprable {
  readonly kind = 'IMAGE';
  constructor(
    readonly batch: number,
    readonly height: number,
    readonly width: number,
    readonly channels: number,
    /** Fills `out` (width*channels values) with row y of image b. */
    readonly row: RowFn,
    /** Per-channel value when every pixel of every image is the same, else null. */
    readonly constant: readonly number[] | null,
  ) {}

  static filled(batch: number, height: number, width: number, color: readonly number[]): SimImage {
    const c = color.map(f32);
    return new SimImage(
      batch,
      height,
      width,
      c.length,
      (_b, _y, out) => {
        for (let x = 0; x < out.length; x++) out[x] = c[x % c.length] ?? 0;
      },
      c,
    );
  }

  /** One value; rows are cached because summaries sample the same rows repeatedly. */
  sampler(): (b: number, y: number, x: number, c: number) => number {
    const buf = new Float32Array(this.width * this.channels);
    let key = '';
    return (b, y, x, c) => {
      const k = `${b}:${y}`;
      if (k !== key) {
        this.row(b, y, buf);
        key = k;
      }
      return buf[x * this.channels + c] ?? 0;
    };
  }

  pyRepr(): string {
    const s = this.sampler();
    return torchRepr([this.batch, this.height, this.width, this.channels], (i) => s(i[0] ?? 0, i[1] ?? 0, i[2] ?? 0, i[3] ?? 0));
  }
}

/** A MASK: float32 [batch, height, width]. */
export class SimMask implements PyReprable {
  readonly kind = 'MASK';
  constructor(
    readonly batch: number,
    readonly height: number,
    readonly width: number,
    readonly value: (b: number, y: number, x: number) => number,
  ) {}
  pyRepr(): string {
    return torchRepr([this.batch, this.height, this.width], (i) => this.value(i[0] ?? 0, i[1] ?? 0, i[2] ?? 0));
  }
}

/** A LATENT dict {"samples": [batch, 4, h/8, w/8]}. `seed` carries what the sampler did, so a
 *  decoded image differs per seed (handy for tests) without simulating diffusion. */
export class SimLatent implements PyReprable {
  readonly kind = 'LATENT';
  constructor(
    readonly batch: number,
    readonly height8: number,
    readonly width8: number,
    readonly seed: bigint | null,
  ) {}
  pyRepr(): string {
    return `{'samples': ${torchRepr([this.batch, 4, this.height8, this.width8], () => 0)}}`;
  }
}

/** MODEL, CLIP, VAE, CONDITIONING and other things the simulator only passes along. */
export class SimOpaque implements PyReprable {
  constructor(
    readonly type: string,
    readonly repr: string,
    readonly info: Readonly<Record<string, unknown>> = {},
  ) {}
  pyRepr(): string {
    return this.repr;
  }
}

// ---------------------------------------------------------------------------------------------
// torch's tensor __repr__ (torch 1.13 _tensor_str): summarised above 1000 elements with 3 edge
// items per dimension, one shared formatter for all printed values, linewidth 80.

const EDGE = 3;
const LINEWIDTH = 80;

interface Formatter {
  width: number;
  format(v: number): string;
}

function makeFormatter(values: number[]): Formatter {
  const nz = values.filter((v) => Number.isFinite(v) && v !== 0);
  let intMode = true;
  let sciMode = false;
  let width = 1;
  if (nz.length > 0) {
    const abs = nz.map(Math.abs);
    const min = Math.min(...abs);
    const max = Math.max(...abs);
    intMode = nz.every((v) => v === Math.ceil(v));
    if (intMode) {
      if (max / min > 1000 || max > 1e8) {
        sciMode = true;
        for (const v of nz) width = Math.max(width, formatExp(v, 4).length);
      } else for (const v of nz) width = Math.max(width, formatFixed(v, 0).length + 1);
    } else if (max / min > 1000 || max > 1e8 || min < 1e-4) {
      sciMode = true;
      for (const v of nz) width = Math.max(width, formatExp(v, 4).length);
    } else for (const v of nz) width = Math.max(width, formatFixed(v, 4).length);
  }
  return {
    width,
    format(v: number): string {
      let s: string;
      if (sciMode) s = formatExp(v, 4);
      else if (intMode) s = formatFixed(v, 0) + (Number.isFinite(v) ? '.' : '');
      else s = formatFixed(v, 4);
      return s.padStart(width, ' ');
    },
  };
}

function printedIndices(size: number, summarize: boolean): number[] {
  if (summarize && size > 2 * EDGE) return [0, 1, 2, size - 3, size - 2, size - 1];
  return Array.from({ length: size }, (_, k) => k);
}

export function torchRepr(shape: number[], get: (idx: number[]) => number): string {
  const numel = shape.reduce((a, b) => a * b, 1);
  const summarize = numel > 1000;
  const picked = shape.map((s) => printedIndices(s, summarize));
  const values: number[] = [];
  const collect = (d: number, idx: number[]): void => {
    if (d === shape.length) {
      values.push(get(idx));
      return;
    }
    for (const i of picked[d] ?? []) collect(d + 1, [...idx, i]);
  };
  collect(0, []);
  const fmt = makeFormatter(values);

  const render = (d: number, idx: number[], indent: number): string => {
    const size = shape[d] ?? 0;
    const remaining = shape.length - d;
    const cut = summarize && size > 2 * EDGE;
    const head = cut ? [0, 1, 2] : Array.from({ length: size }, (_, k) => k);
    const tail = cut ? [size - 3, size - 2, size - 1] : [];
    if (remaining === 1) {
      const data = [
        ...head.map((i) => fmt.format(get([...idx, i]))),
        ...(cut ? [' ...'] : []),
        ...tail.map((i) => fmt.format(get([...idx, i]))),
      ];
      const perLine = Math.max(1, Math.floor((LINEWIDTH - indent) / (fmt.width + 2)));
      const lines: string[] = [];
      for (let k = 0; k < data.length; k += perLine) lines.push(data.slice(k, k + perLine).join(', '));
      return '[' + lines.join(',\n' + ' '.repeat(indent + 1)) + ']';
    }
    const slices = [
      ...head.map((i) => render(d + 1, [...idx, i], indent + 1)),
      ...(cut ? ['...'] : []),
      ...tail.map((i) => render(d + 1, [...idx, i], indent + 1)),
    ];
    return '[' + slices.join(',' + '\n'.repeat(remaining - 1) + ' '.repeat(indent + 1)) + ']';
  };
  return 'tensor(' + render(0, [], 7) + ')';
}
