import { dumps, floatRepr, loads, parseRaw, PyFloat, pyString, RawNumber } from './pyjson';

describe('floatRepr (a float as json.dumps writes it: repr(float), Infinity for inf)', () => {
  test.each([
    [0, '0.0'],
    [-0, '-0.0'],
    [1, '1.0'],
    [100, '100.0'],
    [0.1, '0.1'],
    [1.5, '1.5'],
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [0.000123, '0.000123'],
    [0.0000123, '1.23e-05'],
    [1e15, '1000000000000000.0'],
    [1e16, '1e+16'],
    [1.5e16, '1.5e+16'],
    [123456789.125, '123456789.125'],
    [1e100, '1e+100'],
    [-2.5e-7, '-2.5e-07'],
    [1 / 3, '0.3333333333333333'],
    [Infinity, 'Infinity'],
  ])('%p → %s', (value, text) => {
    expect(floatRepr(value)).toBe(text);
  });
});

describe('dumps', () => {
  test('indent=4, sort_keys: the signed message layout', () => {
    const text = dumps(
      { url: 'https://1.2.3.4:5', cost: new RawNumber('100.0'), reqnum: new RawNumber('4'), endpoint: 'e' },
      { indent: 4, sortKeys: true },
    );
    expect(text).toBe('{\n    "cost": 100.0,\n    "endpoint": "e",\n    "reqnum": 4,\n    "url": "https://1.2.3.4:5"\n}');
  });

  test('the url-only message equals JSON.stringify(..., null, 4) for ASCII', () => {
    const url = 'https://120.238.149.138:26172';
    expect(dumps({ url }, { indent: 4, sortKeys: true })).toBe(JSON.stringify({ url }, null, 4));
  });

  test('raw tokens are rewritten as Python would after json.loads', () => {
    expect(dumps([new RawNumber('1e2'), new RawNumber('1.50'), new RawNumber('-0'), new RawNumber('18446744073709551615')])).toBe(
      '[100.0, 1.5, 0, 18446744073709551615]',
    );
  });

  test('default separators, nested values, PyFloat and plain numbers', () => {
    expect(dumps({ a: [1, new PyFloat(2), 2.5, null, true], b: {} })).toBe('{"a": [1, 2.0, 2.5, null, true], "b": {}}');
    expect(dumps({ a: { b: [1] } }, { indent: 4 })).toBe('{\n    "a": {\n        "b": [\n            1\n        ]\n    }\n}');
  });

  test('ensure_ascii: non-ASCII and control characters escaped like Python', () => {
    expect(pyString('é ✓ 😀')).toBe('"\\u00e9 \\u2713 \\ud83d\\ude00"');
    expect(pyString('a"b\\c\n\t\u0001\u007f/')).toBe('"a\\"b\\\\c\\n\\t\\u0001\\u007f/"');
  });
});

test('parseRaw keeps number tokens', () => {
  const value = parseRaw('{"cost": 100.0, "n": [1, 2e3], "s": "x\\"y", "t": true, "z": null}') as Record<string, unknown>;
  expect(value.cost).toEqual(new RawNumber('100.0'));
  expect(value.n).toEqual([new RawNumber('1'), new RawNumber('2e3')]);
  expect(value.s).toBe('x"y');
  expect(value.t).toBe(true);
  expect(value.z).toBeNull();
});

describe('the parts the simulator shares', () => {
  test('loads: dicts as Maps in text order (integer-like keys too), kinds of numbers kept', () => {
    const value = loads('{"10": 1.0, "9": 2, "big": 18446744073709551615, "10": 3.5}') as Map<string, unknown>;
    expect([...value.keys()]).toEqual(['10', '9', 'big']); // a repeated key keeps its first place, its last value
    expect(value.get('10')).toEqual(new PyFloat(3.5));
    expect(value.get('9')).toBe(2);
    expect(value.get('big')).toBe(18446744073709551615n);
    expect(dumps(value)).toBe('{"10": 3.5, "9": 2, "big": 18446744073709551615}');
  });

  test('sort_keys and indent apply to Maps as to objects', () => {
    expect(
      dumps(
        new Map<string, number>([
          ['b', 1],
          ['a', 2],
        ]),
        { sortKeys: true },
      ),
    ).toBe('{"a": 2, "b": 1}');
  });

  test('parseRaw: a "__proto__" key is data, as with JSON.parse', () => {
    const value = parseRaw('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto__']);
    expect(dumps(value)).toBe('{"__proto__": {"x": 1}}');
  });

  test('an object that is not JSON raises TypeError, as json.dumps does', () => {
    class Tensor {}
    expect(() => dumps([new Tensor()])).toThrow(new TypeError('Object of type Tensor is not JSON serializable'));
    expect(dumps({ a: undefined, b: [undefined] })).toBe('{"b": [null]}');
  });
});
