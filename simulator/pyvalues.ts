// Python value semantics that ComfyUI's wire format and error messages leak, on top of the shared
// json module (worker/util/pyjson.ts: PyFloat, dumps, loads): dicts as Maps in insertion order,
// repr()/str() as they appear in error messages, int()/float()/bool() and == as prompt
// validation applies them, '{:.4f}'-style float formatting and set iteration order. Values parsed
// from requests keep Python's distinctions so the simulator can echo them back as ComfyUI does.

import { PyFloat, floatRepr as jsonFloatRepr, intRepr } from '../worker/util/pyjson';

/** An object whose Python str()/repr() is known (tensors, models, ...). */
export interface PyReprable {
  pyRepr(): string;
}

export type PyDict = Map<string, PyValue>;
export type PyValue = null | boolean | number | bigint | string | PyFloat | PyValue[] | PyDict | PyReprable;

/** A Python exception to be reported the way ComfyUI reports it (type name, str(ex), frames). */
export class PyException extends Error {
  constructor(
    readonly excType: string,
    readonly pyMessage: string,
    readonly frames: string[] = [],
  ) {
    super(`${excType}: ${pyMessage}`);
  }
}

export function isPyDict(v: unknown): v is PyDict {
  return v instanceof Map;
}

export function isReprable(v: unknown): v is PyReprable {
  return typeof v === 'object' && v !== null && typeof (v as { pyRepr?: unknown }).pyRepr === 'function';
}

/** Numeric value of a Python int/float/bool, or null for anything else. */
export function pyNumber(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}

export function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'int';
  if (v instanceof PyFloat) return 'float';
  if (typeof v === 'string') return 'str';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'dict';
  return 'object';
}

// ---------------------------------------------------------------------------------------------
// Conversions of parsed values

/** Converts parsed Python values to plain JSON-able JS values (Maps to objects, PyFloat to
 *  number). For APIs that hand values to test code. */
export function toPlain(v: unknown): unknown {
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[k] = toPlain(val);
    return o;
  }
  return v;
}

/** Deep copy of parsed values (Python's copy.deepcopy for JSON-ish data). */
export function pyDeepCopy<T>(v: T): T {
  if (Array.isArray(v)) return v.map(pyDeepCopy) as T;
  if (v instanceof Map) return new Map([...v].map(([k, val]) => [k, pyDeepCopy(val)])) as T;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Exact float formatting (Python rounds half-to-even on the exact binary value; JS's toFixed and
// toExponential round ties away from zero, and format exponents differently).

function decompose(x: number): { mant: bigint; exp: number } {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, Math.abs(x));
  const hi = buf.getUint32(0);
  const lo = buf.getUint32(4);
  const e = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (e === 0) return { mant, exp: -1074 };
  mant |= 1n << 52n;
  return { mant, exp: e - 1075 };
}

/** round(|x| * 10^p) half-to-even, as an exact bigint. */
function scaledRound(x: number, p: number): bigint {
  const { mant, exp } = decompose(x);
  let num = mant;
  let den = 1n;
  if (exp >= 0) num <<= BigInt(exp);
  else den <<= BigInt(-exp);
  if (p >= 0) num *= 10n ** BigInt(p);
  else den *= 10n ** BigInt(-p);
  const q = num / den;
  const r2 = (num % den) * 2n;
  if (r2 > den || (r2 === den && q % 2n === 1n)) return q + 1n;
  return q;
}

/** Python's '{:.pf}'.format(x). */
export function formatFixed(x: number, p: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const digits = scaledRound(x, p)
    .toString()
    .padStart(p + 1, '0');
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  return p === 0 ? sign + digits : sign + digits.slice(0, -p) + '.' + digits.slice(-p);
}

/** Python's '{:.pe}'.format(x). */
export function formatExp(x: number, p: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}${p > 0 ? '0.' + '0'.repeat(p) : '0'}e+00`;
  let e = Math.floor(Math.log10(Math.abs(x)));
  let q = scaledRound(x, p - e);
  // log10 may be off by one near powers of ten; fix up so q has exactly p+1 digits.
  if (q >= 10n ** BigInt(p + 1)) q = scaledRound(x, p - ++e);
  else if (q < 10n ** BigInt(p)) q = scaledRound(x, p - --e);
  if (q >= 10n ** BigInt(p + 1)) q = scaledRound(x, p - ++e);
  const d = q.toString();
  const mantissa = p > 0 ? d[0] + '.' + d.slice(1) : d;
  const es = Math.abs(e).toString().padStart(2, '0');
  return `${sign}${mantissa}e${e < 0 ? '-' : '+'}${es}`;
}

/** Python's repr(float): json.dumps writes the same digits but spells NaN and the infinities apart. */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return jsonFloatRepr(x);
}

// ---------------------------------------------------------------------------------------------
// repr() / str()

function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else if (c > 0x7f && /[\p{C}\p{Z}]/u.test(ch)) {
      if (c <= 0xff) out += '\\x' + c.toString(16).padStart(2, '0');
      else if (c <= 0xffff) out += '\\u' + c.toString(16).padStart(4, '0');
      else out += '\\U' + c.toString(16).padStart(8, '0');
    } else out += ch;
  }
  return out + quote;
}

export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? intRepr(v) : floatRepr(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return strRepr(v);
  if (v instanceof PyFloat) return floatRepr(v.value);
  if (Array.isArray(v)) return '[' + v.map(pyRepr).join(', ') + ']';
  if (isReprable(v)) return v.pyRepr();
  const entries: Array<[string, unknown]> = v instanceof Map ? [...v.entries()] : Object.entries(v as object);
  return '{' + entries.map(([k, val]) => `${strRepr(k)}: ${pyRepr(val)}`).join(', ') + '}';
}

export function pyStr(v: unknown): string {
  return typeof v === 'string' ? v : pyRepr(v);
}

// ---------------------------------------------------------------------------------------------
// Builtin conversions used by prompt validation (int(), float(), str(), bool())

export function pyInt(v: unknown): number | bigint {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' || typeof v === 'bigint') return v;
  if (v instanceof PyFloat) {
    if (Number.isNaN(v.value)) throw new PyException('ValueError', 'cannot convert float NaN to integer');
    if (!Number.isFinite(v.value)) throw new PyException('OverflowError', 'cannot convert float infinity to integer');
    const t = Math.trunc(v.value);
    return Number.isSafeInteger(t) ? t : BigInt(t);
  }
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^[-+]?\d+(_\d+)*$/.test(s)) {
      const big = BigInt(s.replace(/_/g, ''));
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    throw new PyException('ValueError', `invalid literal for int() with base 10: ${strRepr(v)}`);
  }
  throw new PyException(
    'TypeError',
    `int() argument must be a string, a bytes-like object or a real number, not '${pyTypeName(v)}'`,
  );
}

export function pyFloat(v: unknown): PyFloat {
  if (v instanceof PyFloat) return v;
  if (typeof v === 'boolean') return new PyFloat(v ? 1 : 0);
  if (typeof v === 'number' || typeof v === 'bigint') return new PyFloat(Number(v));
  if (typeof v === 'string') {
    const s = v.trim().replace(/(\d)_(?=\d)/g, '$1');
    if (/^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/.test(s)) return new PyFloat(Number(s));
    const special = /^([-+]?)(inf|infinity|nan)$/i.exec(s);
    if (special) {
      const neg = special[1] === '-';
      return new PyFloat((special[2] ?? '').toLowerCase() === 'nan' ? NaN : neg ? -Infinity : Infinity);
    }
    throw new PyException('ValueError', `could not convert string to float: ${strRepr(v)}`);
  }
  throw new PyException('TypeError', `float() argument must be a string or a real number, not '${pyTypeName(v)}'`);
}

export function pyBool(v: unknown): boolean {
  if (v === null || v === undefined || v === false) return false;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (v instanceof PyFloat) return v.value !== 0;
  if (typeof v === 'string' || Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  return true;
}

/** Python ==, for the JSON-ish values that reach comparisons (1 == 1.0 == True). */
export function pyEquals(a: unknown, b: unknown): boolean {
  const na = pyNumber(a);
  const nb = pyNumber(b);
  if (na !== null && nb !== null) {
    if (typeof a === 'bigint' || typeof b === 'bigint') {
      try {
        return BigInt(a as bigint | number) === BigInt(b as bigint | number);
      } catch {
        return false;
      }
    }
    return na === nb;
  }
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => pyEquals(x, b[k]));
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !pyEquals(v, b.get(k))) return false;
    return true;
  }
  return a === b;
}

/** Python a < b for numbers (ints may be bigint). */
export function pyLess(a: unknown, b: unknown): boolean {
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    const fa = pyNumber(a);
    const fb = pyNumber(b);
    if (fa === null || fb === null) return false;
    if (Number.isInteger(fa) && Number.isInteger(fb)) {
      const ia = typeof a === 'bigint' ? a : BigInt(fa);
      const ib = typeof b === 'bigint' ? b : BigInt(fb);
      return ia < ib;
    }
    return fa < fb;
  }
  const fa = pyNumber(a);
  const fb = pyNumber(b);
  return fa !== null && fb !== null && fa < fb;
}

// ---------------------------------------------------------------------------------------------
// Set iteration order

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) {
    h ^= s.charCodeAt(k);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The order in which a CPython set of these strings would iterate. CPython's real order depends
 *  on per-process random string hashes (PYTHONHASHSEED), so any order is "faithful"; this uses a
 *  fixed stand-in hash chosen so that node ids "1".."4" come out as the recorded server's did
 *  (3, 4, 1, 2). Used where ComfyUI does list(some_set): executed, current_outputs, outputs. */
export function pySetOrder(items: Iterable<string>): string[] {
  const unique = [...new Set(items)];
  let size = 8;
  while (unique.length * 5 >= size * 3) size *= 4;
  const table: Array<string | undefined> = new Array<string | undefined>(size);
  for (const s of unique) {
    const h = /^\d{1,9}$/.test(s) ? Number(s) + 5 : fnv1a(s);
    let slot = h & (size - 1);
    while (table[slot] !== undefined) slot = (slot + 1) & (size - 1);
    table[slot] = s;
  }
  return table.filter((s): s is string => s !== undefined);
}
