// Python's json module, byte for byte, for the places where Python reads, signs or writes what we
// write: the Vast door's signed auth_data messages (indent=4, sort_keys=True) and autoscaler
// reports, and the simulator's ComfyUI wire format (the default ", " and ": " separators).
// Python keeps ints and floats apart (`100.0` stays `100.0`, JavaScript would print `100`), so a
// float we produce is marked (PyFloat), a number read from JSON keeps its kind (PyFloat, or an
// int that may be a bigint) or its raw token (RawNumber), and dicts read from JSON are Maps,
// because JavaScript objects reorder integer-like keys such as node ids "10" and "9".
// Strings are written with ensure_ascii (every non-printable or non-ASCII character as \uXXXX,
// surrogate pairs for astral ones). A leaf module: it imports nothing.

/** A value Python holds as a float (written as repr(float): 0.0, 1.5, 1e-05, 1e+16). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A JSON number token exactly as it arrived; Python reads `100` as an int and `100.0` as a float. */
export class RawNumber {
  constructor(readonly token: string) {}
}

/** What dumps writes and loads/parseRaw return. Plain JS numbers are ints when integral. */
export type PyJson =
  null | boolean | string | number | bigint | PyFloat | RawNumber | PyJson[] | Map<string, PyJson> | { [key: string]: PyJson };

/** What loads returns: Python's json.loads types (dict as Map, float as PyFloat, big int as bigint). */
export type PyLoaded = null | boolean | string | number | bigint | PyFloat | PyLoaded[] | Map<string, PyLoaded>;

export interface DumpOptions {
  /** Python's indent: one item per line, lines end in "," and ": " between key and value. */
  indent?: number;
  sortKeys?: boolean;
}

// ---------------------------------------------------------------------------------------------
// json.dumps

/**
 * json.dumps. Writes null, booleans, strings, numbers (integral ones as ints), bigint, PyFloat,
 * RawNumber, arrays, Maps and plain objects (an `undefined` member is skipped, as JSON.stringify
 * does; `undefined` elsewhere is null). Anything else raises TypeError, as Python does for an
 * object that is not JSON serializable. Typed `unknown` because callers hand it Python values
 * that carry more than JSON (the simulator's tensors), for which the TypeError is the answer.
 */
export function dumps(value: unknown, opts: DumpOptions = {}): string {
  return write(value, opts, 0);
}

function write(value: unknown, opts: DumpOptions, depth: number): string {
  if (value === null || value === undefined) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'string') return pyString(value);
  if (typeof value === 'number') return Number.isInteger(value) ? intRepr(value) : floatRepr(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') throw new TypeError(`Object of type ${typeof value} is not JSON serializable`);
  if (value instanceof PyFloat) return floatRepr(value.value);
  if (value instanceof RawNumber) return rawNumber(value.token);
  const indent = opts.indent;
  const open = (items: string[], o: string, c: string) => {
    if (items.length === 0) return `${o}${c}`;
    if (indent === undefined) return `${o}${items.join(', ')}${c}`;
    const inner = '\n' + ' '.repeat(indent * (depth + 1));
    return `${o}${inner}${items.join(`,${inner}`)}\n${' '.repeat(indent * depth)}${c}`;
  };
  if (Array.isArray(value))
    return open(
      value.map((v) => write(v, opts, depth + 1)),
      '[',
      ']',
    );
  let entries: Array<[string, unknown]>;
  if (value instanceof Map) entries = [...(value as Map<string, unknown>)];
  else if (isPlainObject(value)) entries = Object.entries(value);
  else throw new TypeError(`Object of type ${value.constructor?.name ?? 'object'} is not JSON serializable`);
  entries = entries.filter(([, v]) => v !== undefined);
  if (opts.sortKeys) entries.sort(([a], [b]) => compareCodePoints(a, b));
  return open(
    entries.map(([k, v]) => `${pyString(k)}: ${write(v, opts, depth + 1)}`),
    '{',
    '}',
  );
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Python sorts str keys by code point; JavaScript's default sort compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

/** json.dumps(str) with ensure_ascii: only printable ASCII (space to ~) stays as it is. */
export function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    const short = SHORT_ESCAPES[ch];
    if (short !== undefined) out += short;
    else if (code >= 0x20 && code <= 0x7e) out += ch;
    else out += '\\u' + code.toString(16).padStart(4, '0'); // UTF-16 units: astral chars become pairs
  }
  return out + '"';
}

/** An integral JS number written as a Python int: exact, never "1e+21", never "-0". */
export function intRepr(x: number): string {
  return Math.abs(x) < 1e21 ? String(x === 0 ? 0 : x) : BigInt(x).toString();
}

/** A raw JSON number token as Python would write it back after json.loads. */
function rawNumber(token: string): string {
  if (/^-?\d+$/.test(token)) return BigInt(token).toString(); // Python int: exact, any size
  return floatRepr(Number(token));
}

/**
 * A float as json.dumps writes it: repr(float) (the shortest round-trip digits, the same digits
 * JavaScript picks, in fixed notation when the decimal exponent is in [-5, 16), else as
 * d.ddde±XX; integral values get ".0"), except that NaN and the infinities are spelt NaN,
 * Infinity and -Infinity, where repr() says nan, inf and -inf.
 */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac === '' ? '0' : frac}`;
}

// ---------------------------------------------------------------------------------------------
// json.loads

/**
 * Parses like Python's json.loads: dicts become Maps (insertion order kept; a repeated key keeps
 * its first place and its last value), numbers with a fraction or exponent become PyFloat,
 * integers beyond 2^53 become bigint; NaN, Infinity and -Infinity are accepted. Throws
 * SyntaxError where Python raises JSONDecodeError.
 */
export function loads(text: string): PyLoaded {
  return parse(text, false) as PyLoaded;
}

/**
 * Parses JSON text keeping every number's raw token (RawNumber) and dicts as plain objects: for
 * values that are written back with dumps exactly as Python would after json.loads (the Vast
 * door's auth_data). Same grammar and errors as loads.
 */
export function parseRaw(text: string): PyJson {
  return parse(text, true);
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
const SIMPLE_ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function parse(text: string, raw: boolean): PyJson {
  let i = 0;
  const n = text.length;
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at char ${i}`);
  };
  const special = (token: string, value: number): PyJson => {
    i += token.length;
    return raw ? new RawNumber(token) : new PyFloat(value);
  };
  const value = (): PyJson => {
    ws();
    if (i >= n) fail('Expecting value');
    const c = text[i];
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    if (text.startsWith('null', i)) return ((i += 4), null);
    if (text.startsWith('true', i)) return ((i += 4), true);
    if (text.startsWith('false', i)) return ((i += 5), false);
    if (text.startsWith('NaN', i)) return special('NaN', NaN);
    if (text.startsWith('Infinity', i)) return special('Infinity', Infinity);
    if (text.startsWith('-Infinity', i)) return special('-Infinity', -Infinity);
    return number();
  };
  const number = (): PyJson => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('Expecting value');
    i += m[0].length;
    if (raw) return new RawNumber(m[0]);
    if (m[1] !== undefined || m[2] !== undefined) return new PyFloat(Number(m[0]));
    const big = BigInt(m[0]);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= n) fail('Unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('Invalid control character');
      if (c !== 0x5c) {
        out += text[i++];
        continue;
      }
      const e = text[i + 1];
      i += 2;
      if (e !== undefined && SIMPLE_ESCAPES[e] !== undefined) out += SIMPLE_ESCAPES[e];
      else if (e === 'u') {
        const hex = text.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('Invalid \\uXXXX escape');
        out += String.fromCharCode(parseInt(hex, 16));
        i += 4;
      } else fail('Invalid \\escape');
    }
  };
  const array = (): PyJson[] => {
    i++;
    const out: PyJson[] = [];
    ws();
    if (text[i] === ']') return (i++, out);
    for (;;) {
      out.push(value());
      ws();
      if (text[i] === ',') i++;
      else if (text[i] === ']') return (i++, out);
      else fail("Expecting ',' delimiter");
    }
  };
  const object = (): PyJson => {
    i++;
    const entries: Array<[string, PyJson]> = [];
    ws();
    if (text[i] !== '}')
      for (;;) {
        ws();
        if (text[i] !== '"') fail('Expecting property name enclosed in double quotes');
        const k = string();
        ws();
        if (text[i] !== ':') fail("Expecting ':' delimiter");
        i++;
        entries.push([k, value()]);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') break;
        else fail("Expecting ',' delimiter");
      }
    i++;
    if (!raw) return new Map(entries);
    // Own properties, as JSON.parse makes them: a "__proto__" key is data, not a prototype.
    const obj: { [key: string]: PyJson } = {};
    for (const [k, v] of entries)
      Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
    return obj;
  };
  const v = value();
  ws();
  if (i !== n) fail('Extra data');
  return v;
}

/** Index just past the string literal that starts at `start` (a '"'), without decoding it. */
export function stringEnd(text: string, start: number): number {
  let at = start + 1;
  for (;;) {
    const quote = text.indexOf('"', at);
    if (quote < 0) return text.length;
    let slashes = 0;
    for (let j = quote - 1; text[j] === '\\'; j--) slashes++;
    if (slashes % 2 === 0) return quote + 1;
    at = quote + 1;
  }
}
