// Python's json.dumps, byte for byte, for what the Vast door writes where Python would read or
// sign it: the signed auth_data messages (indent=4, sort_keys=True) and the autoscaler reports.
// Python keeps ints and floats apart (`100.0` stays `100.0`, JavaScript would print `100`), so a
// number taken from a request keeps its raw token (RawNumber) and a float we produce is marked
// (PyFloat). Strings are written with ensure_ascii (every non-printable or non-ASCII character
// as \uXXXX, surrogate pairs for astral ones).

/** A JSON number token exactly as it arrived; Python reads `100` as an int and `100.0` as a float. */
export class RawNumber {
  constructor(readonly token: string) {}
}

/** A value Python holds as a float (written as repr(float): 0.0, 1.5, 1e-05, 1e+16). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export type PyJson = null | boolean | string | number | RawNumber | PyFloat | PyJson[] | { [key: string]: PyJson };

export interface DumpOptions {
  /** Python's indent: one key per line, lines end in "," and ": " between key and value. */
  indent?: number;
  sortKeys?: boolean;
}

export function dumps(value: PyJson, opts: DumpOptions = {}): string {
  return write(value, opts, 0);
}

function write(value: PyJson, opts: DumpOptions, depth: number): string {
  if (value === null) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'string') return pyString(value);
  // A plain JS number: an int when integral (Python int), else a float.
  if (typeof value === 'number') return Number.isInteger(value) ? String(BigInt(value)) : floatRepr(value);
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
  let keys = Object.keys(value);
  if (opts.sortKeys) keys = keys.sort(compareCodePoints);
  return open(
    keys.map((k) => `${pyString(k)}: ${write(value[k] as PyJson, opts, depth + 1)}`),
    '{',
    '}',
  );
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

/** A raw JSON number token as Python would write it back after json.loads. */
function rawNumber(token: string): string {
  if (/^-?\d+$/.test(token)) return BigInt(token).toString(); // Python int: exact, any size
  return floatRepr(Number(token));
}

/**
 * repr(float): the shortest round-trip digits (the same digits JavaScript picks), written in
 * fixed notation when the decimal exponent is in [-5, 16), else as d.ddde±XX; integral values
 * get ".0".
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

/**
 * Parses JSON text keeping every number's raw token (RawNumber). Meant for small values (the
 * auth_data object); the text must already be valid JSON.
 */
export function parseRaw(text: string): PyJson {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const value = (): PyJson => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      const obj: { [key: string]: PyJson } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        const key = string();
        ws();
        i++; // ':'
        obj[key] = value();
        ws();
        if (text[i++] === '}') return obj;
      }
    }
    if (ch === '[') {
      i++;
      const arr: PyJson[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i++] === ']') return arr;
      }
    }
    if (ch === '"') return string();
    if (text.startsWith('true', i)) return ((i += 4), true);
    if (text.startsWith('false', i)) return ((i += 5), false);
    if (text.startsWith('null', i)) return ((i += 4), null);
    const start = i;
    while (i < text.length && /[-+.eE0-9]/.test(text[i]!)) i++;
    return new RawNumber(text.slice(start, i));
  };
  const string = (): string => {
    const end = stringEnd(text, i);
    const s = JSON.parse(text.slice(i, end)) as string;
    i = end;
    return s;
  };
  return value();
}

/** Index just past the string literal that starts at `start` (a '"'). */
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
