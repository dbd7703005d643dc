// A JSON text read in chunks, with chosen long strings diverted out of it as they arrive (input
// images to a spool file), so a large body is never one buffer or one string. The text itself is
// not parsed here: only its structure is followed (objects, arrays, keys, string boundaries) to
// know where each string sits. Everything but the diverted strings is copied through, each
// diverted string is replaced by a placeholder, and JSON.parse reads the (now small) rest, so
// every rule of JSON (numbers, escapes, duplicate keys, `__proto__`, syntax errors) is exactly
// JSON.parse's. `attach` then puts what each diversion produced where its placeholder is.
import { randomBytes } from 'node:crypto';

/** Where a value sits: object keys and array indexes from the root. */
export type JsonPath = ReadonlyArray<string | number>;

/** Takes a diverted string's content as it is in the JSON text (escapes not decoded). */
export interface StringSink {
  write(raw: Buffer): void | Promise<void>;
  /** The string ended: what to put in its place. */
  end(): Promise<unknown>;
  /** The text will not be finished (the body was cut off or refused): let go of what is held. */
  abort(): void;
}

export interface DivertOptions {
  /** Whether a string value at this place may be diverted. */
  wants(path: JsonPath): boolean;
  /**
   * A wanted string is longer than `minBytes`: its sink, or undefined to keep it in the text.
   * `head` is its first bytes as they are in the JSON text.
   */
  divert(path: JsonPath, head: Buffer): StringSink | undefined;
  /** Shorter wanted strings stay in the text. */
  minBytes: number;
}

/** JSON's grammar broken inside a diverted string (where JSON.parse will not see it). */
export class JsonSyntaxError extends SyntaxError {}

interface Frame {
  array: boolean;
  /** Object: the current key (undefined when not known, e.g. too long to track). Array: unused. */
  key: string | undefined;
  /** Object: the next string is a key. */
  expectKey: boolean;
  index: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Keys longer than this are copied through but never matched. */
const MAX_KEY_BYTES = 256;

type StringMode =
  | { kind: 'none' }
  | { kind: 'key'; raw: Buffer[]; bytes: number }
  | { kind: 'plain' }
  | { kind: 'head'; path: JsonPath; head: Buffer[]; bytes: number }
  | { kind: 'diverted'; sink: StringSink; placeholder: string; path: JsonPath };

interface Diversion {
  path: JsonPath;
  placeholder: string;
  value: Promise<unknown>;
}

export class JsonDiverter {
  private readonly opts: DivertOptions;
  private readonly nonce = randomBytes(8).toString('hex');
  private readonly out: Buffer[] = [];
  private readonly stack: Frame[] = [];
  private readonly diversions: Diversion[] = [];
  private mode: StringMode = { kind: 'none' };
  /** The previous chunk ended inside a string, just after a backslash. */
  private escaped = false;

  constructor(opts: DivertOptions) {
    this.opts = opts;
  }

  /** Reads the next chunk; resolves when its diverted part has been taken by the sink. */
  async feed(chunk: Buffer): Promise<void> {
    let copyFrom = 0;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      const mode = this.mode;
      if (mode.kind === 'none') {
        const byte = chunk[i]!;
        i++;
        if (byte === QUOTE) {
          this.openString();
          if (this.mode.kind === 'head') {
            // The opening quote goes out now; the content waits until it is known to stay.
            this.copy(chunk, copyFrom, i);
            copyFrom = i;
          }
        } else this.structure(byte);
        continue;
      }
      // Inside a string: find its end, minding escapes (which may straddle chunks).
      const end = this.stringEnd(chunk, i);
      const stop = end < 0 ? n : end;
      if (mode.kind === 'key') {
        this.keepKey(mode, chunk.subarray(i, stop));
      } else if (mode.kind === 'head') {
        mode.head.push(Buffer.from(chunk.subarray(i, stop)));
        mode.bytes += stop - i;
        copyFrom = stop;
        if (mode.bytes > this.opts.minBytes) await this.decide(mode);
      } else if (mode.kind === 'diverted') {
        if (stop > i) await mode.sink.write(Buffer.from(chunk.subarray(i, stop)));
        copyFrom = stop;
      }
      if (end < 0) break;
      // `end` is the closing quote.
      const current = this.mode;
      if (current.kind === 'head') {
        for (const part of current.head) this.out.push(part);
      } else if (current.kind === 'diverted') {
        this.diversions.push({ path: current.path, placeholder: current.placeholder, value: current.sink.end() });
      }
      this.closeString(current);
      i = end + 1;
    }
    if (this.mode.kind === 'none' || this.mode.kind === 'key' || this.mode.kind === 'plain') this.copy(chunk, copyFrom, n);
  }

  /** The body will not be finished: the string being diverted, if any, is abandoned. */
  abort(): void {
    if (this.mode.kind === 'diverted') this.mode.sink.abort();
    this.mode = { kind: 'none' };
  }

  /**
   * The text with every diverted string replaced, and a function that puts each diversion's
   * result in place of its placeholder in the parsed value. Call once the body has ended.
   */
  async finish(): Promise<{ text: string; attach(root: unknown): void }> {
    const mode = this.mode;
    if (mode.kind === 'head') for (const part of mode.head) this.out.push(part);
    // An unterminated diverted string: the text is cut short there, so JSON.parse refuses it.
    if (mode.kind === 'diverted') await mode.sink.end();
    const text = Buffer.concat(this.out).toString('utf8');
    this.out.length = 0;
    const results = await Promise.all(this.diversions.map((d) => d.value));
    const diversions = this.diversions.map((d, k) => ({ ...d, result: results[k] }));
    return {
      text,
      attach(root: unknown) {
        for (const d of diversions) {
          let parent: unknown = root;
          for (const step of d.path.slice(0, -1)) parent = isContainer(parent) ? parent[step as never] : undefined;
          const last = d.path[d.path.length - 1]!;
          // A later duplicate key may have replaced it: then its result is simply not used.
          if (isContainer(parent) && parent[last as never] === d.placeholder)
            (parent as Record<string | number, unknown>)[last] = d.result;
        }
      },
    };
  }

  private copy(chunk: Buffer, from: number, to: number): void {
    // Copied, not sliced: a slice would keep the whole chunk (mostly diverted bytes) alive.
    if (to > from) this.out.push(Buffer.from(chunk.subarray(from, to)));
  }

  private structure(byte: number): void {
    const top = this.stack[this.stack.length - 1];
    switch (byte) {
      case 0x7b: // {
        this.stack.push({ array: false, key: undefined, expectKey: true, index: 0 });
        break;
      case 0x5b: // [
        this.stack.push({ array: true, key: undefined, expectKey: false, index: 0 });
        break;
      case 0x7d: // }
      case 0x5d: // ]
        this.stack.pop();
        break;
      case 0x2c: // ,
        if (top?.array) top.index++;
        else if (top) {
          top.expectKey = true;
          top.key = undefined;
        }
        break;
      case 0x3a: // :
        if (top && !top.array) top.expectKey = false;
        break;
      default:
        break;
    }
  }

  private path(): JsonPath {
    return this.stack.map((f) => (f.array ? f.index : (f.key ?? '')));
  }

  private openString(): void {
    const top = this.stack[this.stack.length - 1];
    if (top && !top.array && top.expectKey) {
      this.mode = { kind: 'key', raw: [], bytes: 0 };
      return;
    }
    const known = this.stack.every((f) => f.array || f.key !== undefined);
    const path = this.path();
    this.mode = known && this.opts.wants(path) ? { kind: 'head', path, head: [], bytes: 0 } : { kind: 'plain' };
  }

  private keepKey(mode: Extract<StringMode, { kind: 'key' }>, part: Buffer): void {
    mode.bytes += part.length;
    if (mode.bytes <= MAX_KEY_BYTES) mode.raw.push(Buffer.from(part));
  }

  private closeString(mode: StringMode): void {
    if (mode.kind === 'key') {
      const top = this.stack[this.stack.length - 1];
      if (top) top.key = mode.bytes <= MAX_KEY_BYTES ? decodeKey(Buffer.concat(mode.raw)) : undefined;
    }
    this.mode = { kind: 'none' };
  }

  /** A wanted string passed `minBytes`: divert it, or keep it in the text after all. */
  private async decide(mode: Extract<StringMode, { kind: 'head' }>): Promise<void> {
    const head = Buffer.concat(mode.head);
    const sink = this.opts.divert(mode.path, head);
    if (!sink) {
      this.out.push(head);
      this.mode = { kind: 'plain' };
      return;
    }
    const placeholder = `\u0000${this.nonce}:${this.diversions.length}`;
    // Written as JSON's escape, so the placeholder is a valid string body.
    this.out.push(Buffer.from(`\\u0000${this.nonce}:${this.diversions.length}`));
    this.mode = { kind: 'diverted', sink, placeholder, path: mode.path };
    await sink.write(head);
  }

  /** Index of the closing quote of the string being read, or -1 if it does not end in this chunk. */
  private stringEnd(chunk: Buffer, from: number): number {
    let i = from;
    if (this.escaped) {
      this.escaped = false;
      i++;
    }
    for (;;) {
      const quote = chunk.indexOf(QUOTE, i);
      const slash = chunk.indexOf(BACKSLASH, i);
      if (slash >= 0 && (quote < 0 || slash < quote)) {
        if (slash + 1 >= chunk.length) {
          this.escaped = true;
          return -1;
        }
        i = slash + 2;
        continue;
      }
      return quote;
    }
  }
}

function isContainer(value: unknown): value is Record<string | number, unknown> {
  return typeof value === 'object' && value !== null;
}

function decodeKey(raw: Buffer): string | undefined {
  try {
    return JSON.parse(`"${raw.toString('utf8')}"`) as string;
  } catch {
    return undefined; // not a valid key: JSON.parse of the whole text refuses it anyway
  }
}

/**
 * Decodes the content of a JSON string (the bytes between its quotes) into bytes, for content
 * that is meant to be ASCII (base64, a data URI's head): each character becomes one byte, and any
 * character above 0x7f becomes 0x80 (invalid in base64, harmless elsewhere). Breaks of JSON's
 * grammar (a raw control character, an unknown escape) throw a JsonSyntaxError.
 */
export class JsonStringBytes {
  /** Bytes of an escape sequence cut by a chunk boundary. */
  private pending = '';

  push(raw: Buffer): Buffer {
    const out = Buffer.allocUnsafe(raw.length + 1);
    let n = 0;
    let i = 0;
    if (this.pending !== '') {
      // Finish the escape begun in the previous chunk first (its length is known from its 2nd byte).
      while (i < raw.length && this.pending.length < escapeLength(this.pending)) this.pending += String.fromCharCode(raw[i++]!);
      if (this.pending.length < escapeLength(this.pending)) return out.subarray(0, 0);
      out[n++] = escapeByte(this.pending);
      this.pending = '';
    }
    while (i < raw.length) {
      const byte = raw[i]!;
      if (byte !== BACKSLASH) {
        if (byte < 0x20) throw new JsonSyntaxError(`Bad control character in string literal`);
        // A UTF-8 sequence's bytes are all >= 0x80: each stays "not ASCII".
        out[n++] = byte < 0x80 ? byte : 0x80;
        i++;
        continue;
      }
      const need = raw[i + 1] === 0x75 ? 6 : 2; // \uXXXX or \x
      if (i + need > raw.length) {
        this.pending = raw.toString('latin1', i);
        break;
      }
      out[n++] = escapeByte(raw.toString('latin1', i, i + need));
      i += need;
    }
    return out.subarray(0, n);
  }

  /** The string ended: an escape cut short is a syntax error. */
  end(): void {
    if (this.pending !== '') throw new JsonSyntaxError('Bad escaped character in string literal');
  }
}

/** Length of the escape sequence that starts with `start` (a backslash and maybe more). */
function escapeLength(start: string): number {
  if (start.length < 2) return 2;
  return start[1] === 'u' ? 6 : 2;
}

const SIMPLE_ESCAPES: Record<string, number> = { '"': 0x22, '\\': 0x5c, '/': 0x2f, b: 0x08, f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09 };

function escapeByte(escape: string): number {
  if (escape[1] === 'u') {
    if (!/^\\u[0-9a-fA-F]{4}$/.test(escape)) throw new JsonSyntaxError('Bad Unicode escape in string literal');
    const code = parseInt(escape.slice(2), 16);
    return code < 0x80 ? code : 0x80;
  }
  const byte = SIMPLE_ESCAPES[escape[1] ?? ''];
  if (byte === undefined) throw new JsonSyntaxError('Bad escaped character in string literal');
  return byte;
}
