// The Python-compatibility layer the simulator uses: json.dumps/json.loads bytes (worker/util/pyjson.ts),
// repr(), float formatting, set order (simulator/pyvalues.ts).

import { PyFloat, dumps as pyJsonStringify, loads as pyJsonParse } from '../../worker/util/pyjson';
import { PyException, floatRepr, formatExp, formatFixed, pyFloat, pyInt, pyRepr, pySetOrder } from '../../simulator/pyvalues';
import { SimImage } from '../../simulator/tensor';

describe('pyjson', () => {
  test('json.dumps: separators, ensure_ascii, floats, big ints, key order of parsed dicts', () => {
    const v = pyJsonParse('{"10": 1.0, "9": [1, 2.5e-7, 18446744073709551615], "s": "é\\u2028\\"x"}');
    expect(pyJsonStringify(v)).toBe('{"10": 1.0, "9": [1, 2.5e-07, 18446744073709551615], "s": "\\u00e9\\u2028\\"x"}');
    expect(pyJsonStringify({ a: NaN, b: -Infinity, c: [true, null] })).toBe('{"a": NaN, "b": -Infinity, "c": [true, null]}');
    expect(pyJsonStringify(new PyFloat(1e16))).toBe('1e+16');
  });

  test('json.loads accepts what Python accepts and rejects the rest', () => {
    expect(pyJsonStringify(pyJsonParse(' [NaN, -Infinity, -0.0] '))).toBe('[NaN, -Infinity, -0.0]');
    for (const bad of ['', '{not json', '[1,]', '{"a":1}x', '\ufeff{}', '"\u0001"'])
      expect(() => pyJsonParse(bad)).toThrow(SyntaxError);
  });

  test('repr of floats and strings', () => {
    expect([0.1, 100, 1e-5, 123456789012345680, 0.5].map((x) => floatRepr(x))).toEqual([
      '0.1',
      '100.0',
      '1e-05',
      '1.2345678901234568e+17',
      '0.5',
    ]);
    expect(pyRepr(['a', "it's", 'say "hi"', 'both \' and "', 'tab\there', null, true, new PyFloat(2)])).toBe(
      `['a', "it's", 'say "hi"', 'both \\' and "', 'tab\\there', None, True, 2.0]`,
    );
  });

  test('format with half-to-even on the exact binary value', () => {
    expect(formatFixed(0.03125, 4)).toBe('0.0312');
    expect(formatFixed(0.03135, 4)).toBe('0.0314'); // not a tie: 0.03135 is stored slightly above
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatExp(12345.678, 4)).toBe('1.2346e+04');
    expect(formatExp(0.00012, 4)).toBe('1.2000e-04');
    expect(formatExp(9.99995, 4)).toBe('1.0000e+01');
  });

  test('int() and float() like Python', () => {
    expect(pyInt(' 42 ')).toBe(42);
    expect(pyInt(new PyFloat(-3.9))).toBe(-3);
    expect(pyInt('1_000')).toBe(1000);
    expect(() => pyInt('wide')).toThrow(new PyException('ValueError', "invalid literal for int() with base 10: 'wide'"));
    expect(() => pyInt(null)).toThrow(/not 'NoneType'/);
    expect(pyFloat('1e3').value).toBe(1000);
    expect(pyFloat('-inf').value).toBe(-Infinity);
    expect(() => pyFloat('abc')).toThrow(/could not convert string to float: 'abc'/);
  });

  test('set order stand-in reproduces the recorded order for ids 1..4', () => {
    expect(pySetOrder(['1', '2', '3', '4'])).toEqual(['3', '4', '1', '2']);
    expect(pySetOrder(['2', '1'])).toEqual(['1', '2']);
    expect(pySetOrder(['a', 'b', 'a']).sort()).toEqual(['a', 'b']);
  });

  test('torch repr: small tensors are printed whole, large ones summarised', () => {
    expect(SimImage.filled(1, 1, 2, [0.5, 0.25, 1]).pyRepr()).toBe(
      'tensor([[[[0.5000, 0.2500, 1.0000],\n          [0.5000, 0.2500, 1.0000]]]])',
    );
    const big = SimImage.filled(1, 64, 64, [1, 1, 1]).pyRepr();
    expect(big.startsWith('tensor([[[[1., 1., 1.],\n          [1., 1., 1.],\n          [1., 1., 1.],\n          ...,')).toBe(
      true,
    );
  });
});
