// Base64 in pieces, both ways, so a large payload never has to be one string or one buffer.
//   Base64Decoder: text pushed in chunks (standard or URL-safe alphabet, ASCII whitespace
//     ignored, `=` padding only at the end) to bytes, and whether the whole text was valid.
//   base64Length / Base64Encoder: bytes pushed in chunks to base64 text.

const EMPTY = Buffer.alloc(0);
// 0: not base64 at all.
const DATA = 1;
const PAD = 2;
const SPACE = 3;

/** What each byte is in base64 text. */
const CLASS = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_') CLASS[c.charCodeAt(0)] = DATA;
CLASS['='.charCodeAt(0)] = PAD;
for (const c of ' \t\n\r\f\v') CLASS[c.charCodeAt(0)] = SPACE;

/**
 * Valid text, as the admission check has always had it: after removing whitespace, at least one
 * character of the alphabet, at most two `=` at the very end, and not a length of 4n + 1.
 */
export class Base64Decoder {
  private carry = EMPTY;
  /** Characters seen, padding included, whitespace not. */
  private length = 0;
  private padding = 0;
  private bad = false;

  get valid(): boolean {
    return !this.bad && this.length - this.padding > 0 && this.length % 4 !== 1;
  }

  /** The bytes decoded so far that are complete (the last partial group waits for more). */
  push(chunk: Buffer): Buffer {
    if (this.bad) return EMPTY;
    // Keep only the alphabet's characters; note padding and anything else.
    const clean = Buffer.allocUnsafe(this.carry.length + chunk.length);
    this.carry.copy(clean);
    let n = this.carry.length;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      const kind = CLASS[byte];
      if (kind === DATA) {
        if (this.padding > 0) return this.fail();
        clean[n++] = byte;
        this.length++;
      } else if (kind === PAD) {
        if (++this.padding > 2) return this.fail();
        this.length++;
      } else if (kind !== SPACE) {
        return this.fail();
      }
    }
    const whole = n - (n % 4);
    this.carry = Buffer.from(clean.subarray(whole, n));
    return whole === 0 ? EMPTY : Buffer.from(clean.toString('latin1', 0, whole), 'base64');
  }

  /** The last bytes (a partial group of 2 or 3 characters). */
  end(): Buffer {
    const rest = this.bad || this.carry.length < 2 ? EMPTY : Buffer.from(this.carry.toString('latin1'), 'base64');
    this.carry = EMPTY;
    return rest;
  }

  private fail(): Buffer {
    this.bad = true;
    this.carry = EMPTY;
    return EMPTY;
  }
}

/** Characters of the base64 text (with padding) of `bytes` bytes. */
export function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

/** Bytes in, base64 text out, in pieces: each piece but the last encodes a multiple of 3 bytes. */
export class Base64Encoder {
  private carry = EMPTY;

  push(chunk: Buffer): string {
    const all = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    const whole = all.length - (all.length % 3);
    this.carry = Buffer.from(all.subarray(whole));
    return all.toString('base64', 0, whole);
  }

  end(): string {
    const rest = this.carry.toString('base64');
    this.carry = EMPTY;
    return rest;
  }
}
