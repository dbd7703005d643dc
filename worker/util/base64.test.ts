import { randomBytes } from 'node:crypto';
import { Base64Decoder, Base64Encoder, base64Length } from './base64';

/** Feeds `text` to a decoder in pieces of `piece` bytes. */
function decode(text: string, piece: number): { bytes: Buffer; valid: boolean } {
  const decoder = new Base64Decoder();
  const parts: Buffer[] = [];
  const raw = Buffer.from(text, 'latin1');
  for (let i = 0; i < raw.length; i += piece) parts.push(decoder.push(raw.subarray(i, i + piece)));
  parts.push(decoder.end());
  return { bytes: Buffer.concat(parts), valid: decoder.valid };
}

/** The admission check's rule for a base64 text, as it was written before the decoder existed. */
function validByRegex(text: string): boolean {
  const payload = text.replace(/[ \t\n\r\f\v]+/g, '');
  return payload !== '' && /^[A-Za-z0-9+/_-]+={0,2}$/.test(payload) && payload.length % 4 !== 1;
}

describe('Base64Decoder', () => {
  test.each([1, 3, 4, 7, 1000])('decodes what Buffer decodes, in pieces of %i bytes', (piece) => {
    for (const size of [1, 2, 3, 4, 5, 100, 4097]) {
      const bytes = randomBytes(size);
      for (const text of [bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('base64').replace(/=+$/, '')]) {
        expect(decode(text, piece)).toEqual({ bytes, valid: true });
      }
    }
  });

  test('whitespace anywhere is skipped, as line-wrapped base64 has it', () => {
    const bytes = randomBytes(300);
    const wrapped = bytes.toString('base64').replace(/(.{76})/g, '$1\r\n');
    expect(decode(` ${wrapped}\n`, 5)).toEqual({ bytes, valid: true });
  });

  test.each([
    ['', false],
    ['   ', false],
    ['=', false],
    ['A', false],
    ['AAAAA', false],
    ['AA', true],
    ['AA==', true],
    ['AA===', false],
    ['A=A=', false],
    ['AA=A', false],
    ['***', false],
    ['aGVsbG8gd29ybGQ', true],
    ['aGVs bG8=', true],
    ['aGVsbG8é', false],
    ['-_-_', true],
  ])('validity of %j is %s, the same as the admission rule', (text, valid) => {
    expect(validByRegex(text)).toBe(valid);
    for (const piece of [1, 2, 64]) expect(decode(text, piece).valid).toBe(valid);
  });
});

describe('Base64Encoder', () => {
  test.each([1, 2, 3, 5, 65536])('encodes in pieces of %i bytes what Buffer encodes whole', (piece) => {
    for (const size of [0, 1, 2, 3, 4, 1000, 70000]) {
      const bytes = randomBytes(size);
      const encoder = new Base64Encoder();
      let text = '';
      for (let i = 0; i < size; i += piece) text += encoder.push(bytes.subarray(i, i + piece));
      text += encoder.end();
      expect(text).toBe(bytes.toString('base64'));
      expect(text.length).toBe(base64Length(size));
    }
  });
});
