import { generateKeyPairSync } from 'node:crypto';
import { signedMessage, signMessage } from '../../../test/vast/support/fake-autoscaler';
import { createLogger } from '../../observability/logger';
import { parseEnvelope, type Envelope } from './envelope';
import { candidateMessages, decodeSignature, parsePublicKey, SignatureVerifier } from './signature';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const logger = createLogger('silent');
const URL_ = 'https://120.238.149.138:26172';

function envelope(fields: {
  cost?: string;
  reqnum?: number;
  idx?: number;
  scheme: 'url' | 'fields' | 'legacy-fields';
  extra?: string;
}): Envelope {
  const f = {
    url: URL_,
    cost: fields.cost ?? '1000.0',
    endpoint: 'my-endpoint',
    reqnum: fields.reqnum ?? 4,
    requestIdx: fields.idx ?? 35,
  };
  const sig = signMessage(signedMessage(fields.scheme, f), privateKey);
  const text = `{"auth_data": {"__request_id": "da75", "cost": ${f.cost}, "endpoint": "my-endpoint", "reqnum": ${f.reqnum}, "request_idx": ${f.requestIdx}, "signature": "${sig}", "url": "${URL_}"${fields.extra ?? ''}}, "session_id": null, "payload": {}}`;
  const parsed = parseEnvelope(text);
  if (!parsed.ok) throw new Error('bad envelope');
  return parsed.envelope;
}

function verifier(scheme: 'url' | 'fields' | 'legacy-fields' | 'any' | 'off') {
  const v = new SignatureVerifier({ scheme, logger });
  v.setKey(parsePublicKey(pem));
  return v;
}

test('the candidate messages are the reference texts', () => {
  const env = envelope({ scheme: 'url' });
  const messages = candidateMessages('any', env).map((c) => c.message);
  expect(messages).toEqual([
    `{\n    "url": "${URL_}"\n}`,
    `{\n    "cost": 1000.0,\n    "endpoint": "my-endpoint",\n    "reqnum": 4,\n    "request_idx": 35,\n    "url": "${URL_}"\n}`,
    `{\n    "cost": 1000.0,\n    "endpoint": "my-endpoint",\n    "reqnum": 4,\n    "url": "${URL_}"\n}`,
  ]);
});

test.each([
  ['url', 'url', true],
  ['url', 'fields', false],
  ['fields', 'fields', true],
  ['fields', 'legacy-fields', false],
  ['legacy-fields', 'legacy-fields', true],
  ['any', 'url', true],
  ['any', 'fields', true],
  ['any', 'legacy-fields', true],
] as const)('scheme %s, signed as %s → %s', (scheme, signedAs, ok) => {
  expect(verifier(scheme).check(envelope({ scheme: signedAs })).ok).toBe(ok);
});

test('off accepts anything, even without a key', () => {
  expect(new SignatureVerifier({ scheme: 'off', logger }).check(envelope({ scheme: 'url' })).ok).toBe(true);
});

test('no key loaded → refused', () => {
  expect(new SignatureVerifier({ scheme: 'any', logger }).check(envelope({ scheme: 'url' }))).toEqual({
    ok: false,
    reason: 'public key not loaded',
  });
});

test('replay guard for field signatures: the same message twice, or a reqnum far below the highest', () => {
  const v = verifier('fields');
  const first = envelope({ scheme: 'fields', reqnum: 500 });
  expect(v.check(first).ok).toBe(true);
  expect(v.check(first)).toMatchObject({ ok: false, reason: expect.stringContaining('already used') });
  expect(v.check(envelope({ scheme: 'fields', reqnum: 399 }))).toMatchObject({
    ok: false,
    reason: expect.stringContaining('below the highest'),
  });
  expect(v.check(envelope({ scheme: 'fields', reqnum: 400 })).ok).toBe(true);
});

test('extra auth_data keys: the dataclass fields are tried, and also every key sent', () => {
  const env = envelope({ scheme: 'fields', extra: ', "zone": "eu"' });
  expect(verifier('fields').check(env).ok).toBe(true);
  expect(candidateMessages('fields', env).map((c) => c.message)[1]).toContain('"zone": "eu"');
});

test('signatures are decoded leniently (line breaks and spaces)', () => {
  const sig = signMessage('hello', privateKey);
  const wrapped = sig.replace(/(.{64})/g, '$1\n ');
  expect(decodeSignature(wrapped).equals(Buffer.from(sig, 'base64'))).toBe(true);
});

test('a non-RSA key is refused', () => {
  const { publicKey: ec } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  expect(() => parsePublicKey(ec.export({ type: 'spki', format: 'pem' }).toString())).toThrow(/RSA/);
});
