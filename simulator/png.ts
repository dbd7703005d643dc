// A small PNG encoder that writes files the way ComfyUI's PIL does (8-bit RGB, PIL's adaptive
// per-row filter choice, tEXt metadata, zlib at the node's compress_level with memLevel 9, IDAT
// split every 64 KiB), so a simulated SaveImage of a recorded prompt is byte-identical to the
// recording. Also a PNG decoder for LoadImage (8-bit, non-interlaced).

import { crc32, deflateSync, inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PIL's ImageFile.MAXBLOCK: the encoder hands out compressed data in blocks of this size. */
const MAXBLOCK = 65536;

export function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4, 8))) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

export interface PngOptions {
  width: number;
  height: number;
  /** Raw RGB bytes, row-major, width*3 per row. */
  rgb: Buffer;
  /** tEXt chunks in order (keyword, latin-1 text). */
  text?: Array<[string, string]>;
  compressLevel?: number;
  /** Size of a private ancillary chunk ("paDd") added before IEND; 0 for none. */
  paddingBytes?: number;
}

/** Sum of |byte| with bytes read as signed, the cost libImaging uses to choose a filter. */
function cost(row: Uint8Array): number {
  let s = 0;
  for (let k = 0; k < row.length; k++) {
    const v = row[k] ?? 0;
    s += v < 128 ? v : 256 - v;
  }
  return s;
}

/** Filters one row like PIL's ZipEncode: try None, then Up, Sub, Paeth; keep strictly better. */
function filterRow(cur: Uint8Array, prev: Uint8Array, bpp: number): Buffer {
  const n = cur.length;
  let best = Buffer.alloc(n + 1);
  best[0] = 0;
  best.set(cur, 1);
  let bestCost = cost(cur);
  const tryFilter = (type: number, f: (k: number) => number): void => {
    if (bestCost === 0) return;
    const out = Buffer.alloc(n + 1);
    out[0] = type;
    for (let k = 0; k < n; k++) out[k + 1] = f(k) & 0xff;
    const c = cost(out.subarray(1));
    if (c < bestCost) {
      best = out;
      bestCost = c;
    }
  };
  tryFilter(2, (k) => (cur[k] ?? 0) - (prev[k] ?? 0));
  tryFilter(1, (k) => (cur[k] ?? 0) - (k >= bpp ? (cur[k - bpp] ?? 0) : 0));
  tryFilter(4, (k) => {
    const a = k >= bpp ? (cur[k - bpp] ?? 0) : 0;
    const b = prev[k] ?? 0;
    const c = k >= bpp ? (prev[k - bpp] ?? 0) : 0;
    const p = a + b - c;
    const pa = Math.abs(p - a);
    const pb = Math.abs(p - b);
    const pc = Math.abs(p - c);
    const pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    return (cur[k] ?? 0) - pred;
  });
  return best;
}

export function encodePng(o: PngOptions): Buffer {
  const stride = o.width * 3;
  const rows: Buffer[] = [];
  let prev: Uint8Array = new Uint8Array(stride);
  for (let y = 0; y < o.height; y++) {
    const cur = o.rgb.subarray(y * stride, (y + 1) * stride);
    rows.push(filterRow(cur, prev, 3));
    prev = cur;
  }
  const z = deflateSync(Buffer.concat(rows), { level: o.compressLevel ?? 6, memLevel: 9 });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(o.width, 0);
  ihdr.writeUInt32BE(o.height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [SIGNATURE, pngChunk('IHDR', ihdr)];
  for (const [k, v] of o.text ?? [])
    parts.push(pngChunk('tEXt', Buffer.concat([Buffer.from(k, 'latin1'), Buffer.from([0]), Buffer.from(v, 'latin1')])));
  const block = Math.max(MAXBLOCK, o.width * 4);
  for (let k = 0; k < z.length; k += block) parts.push(pngChunk('IDAT', z.subarray(k, k + block)));
  if ((o.paddingBytes ?? 0) > 0) parts.push(pngChunk('paDd', Buffer.alloc(o.paddingBytes ?? 0)));
  parts.push(pngChunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface DecodedPng {
  width: number;
  height: number;
  /** RGBA bytes; alpha 255 when the file has none. */
  rgba: Buffer;
  hasAlpha: boolean;
}

/** Decodes 8-bit non-interlaced PNGs (grey, RGB, palette, grey+alpha, RGBA); null otherwise. */
export function decodePng(file: Buffer): DecodedPng | null {
  if (file.length < 8 || !file.subarray(0, 8).equals(SIGNATURE)) return null;
  let pos = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let colorType = 0;
  let interlace = 0;
  let palette: Buffer | null = null;
  let trns: Buffer | null = null;
  const idat: Buffer[] = [];
  while (pos + 8 <= file.length) {
    const len = file.readUInt32BE(pos);
    const type = file.toString('latin1', pos + 4, pos + 8);
    const data = file.subarray(pos + 8, pos + 8 + len);
    pos += 12 + len;
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8] ?? 0;
      colorType = data[9] ?? 0;
      interlace = data[12] ?? 0;
    } else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') trns = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  const channelsByType: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
  const ch = channelsByType[colorType];
  if (depth !== 8 || interlace !== 0 || ch === undefined || width === 0 || height === 0) return null;
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch {
    return null;
  }
  const stride = width * ch;
  if (raw.length < (stride + 1) * height) return null;
  const px = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const ft = raw[y * (stride + 1)] ?? 0;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let k = 0; k < stride; k++) {
      const a = k >= ch ? (px[y * stride + k - ch] ?? 0) : 0;
      const b = y > 0 ? (px[(y - 1) * stride + k] ?? 0) : 0;
      const c = k >= ch && y > 0 ? (px[(y - 1) * stride + k - ch] ?? 0) : 0;
      let pred = 0;
      if (ft === 1) pred = a;
      else if (ft === 2) pred = b;
      else if (ft === 3) pred = (a + b) >> 1;
      else if (ft === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + k] = ((src[k] ?? 0) + pred) & 0xff;
    }
  }
  const rgba = Buffer.alloc(width * height * 4);
  let hasAlpha = colorType === 4 || colorType === 6;
  for (let p = 0; p < width * height; p++) {
    const s = p * ch;
    let r = 0;
    let g = 0;
    let b = 0;
    let al = 255;
    if (colorType === 0 || colorType === 4) {
      r = g = b = px[s] ?? 0;
      if (colorType === 4) al = px[s + 1] ?? 255;
    } else if (colorType === 2 || colorType === 6) {
      r = px[s] ?? 0;
      g = px[s + 1] ?? 0;
      b = px[s + 2] ?? 0;
      if (colorType === 6) al = px[s + 3] ?? 255;
    } else {
      const idx = px[s] ?? 0;
      r = palette?.[idx * 3] ?? 0;
      g = palette?.[idx * 3 + 1] ?? 0;
      b = palette?.[idx * 3 + 2] ?? 0;
      if (trns && idx < trns.length) {
        al = trns[idx] ?? 255;
        hasAlpha = true;
      }
    }
    rgba.set([r, g, b, al], p * 4);
  }
  return { width, height, rgba, hasAlpha };
}

/** Width and height of PNG, GIF, JPEG or WebP data, for inputs the decoder does not handle. */
export function sniffImageSize(file: Buffer): { width: number; height: number } | null {
  if (file.length >= 24 && file.subarray(0, 8).equals(SIGNATURE))
    return { width: file.readUInt32BE(16), height: file.readUInt32BE(20) };
  if (file.length >= 10 && file.toString('latin1', 0, 3) === 'GIF')
    return { width: file.readUInt16LE(6), height: file.readUInt16LE(8) };
  if (file.length >= 30 && file.toString('latin1', 0, 4) === 'RIFF' && file.toString('latin1', 8, 12) === 'WEBP') {
    const kind = file.toString('latin1', 12, 16);
    if (kind === 'VP8 ') return { width: file.readUInt16LE(26) & 0x3fff, height: file.readUInt16LE(28) & 0x3fff };
    if (kind === 'VP8L') {
      const bits = file.readUInt32LE(21);
      return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
    }
    if (kind === 'VP8X') return { width: file.readUIntLE(24, 3) + 1, height: file.readUIntLE(27, 3) + 1 };
  }
  if (file.length >= 4 && file[0] === 0xff && file[1] === 0xd8) {
    let p = 2;
    while (p + 9 < file.length) {
      if (file[p] !== 0xff) return null;
      const marker = file[p + 1] ?? 0;
      const len = file.readUInt16BE(p + 2);
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: file.readUInt16BE(p + 5), width: file.readUInt16BE(p + 7) };
      }
      p += 2 + len;
    }
  }
  return null;
}
