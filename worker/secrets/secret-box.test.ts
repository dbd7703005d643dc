import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../../test/support/tmp';
import { SecretBox } from './secret-box';

const dir = tempDir('secrets-');

test('round trip; a key file is created once with mode 0600 and reused', () => {
  const file = path.join(dir, 'sub', 'key');
  const a = SecretBox.open({ keyFile: file });
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  const sealed = a.seal({ secret: 'shh' });
  expect(sealed.includes('shh')).toBe(false);
  expect(SecretBox.open({ keyFile: file }).unseal(sealed)).toEqual({ secret: 'shh' });
});

test('JOB_SECRETS_KEY in hex, base64 or as a passphrase; another key cannot open it', () => {
  const hex = 'ab'.repeat(32);
  const box = SecretBox.open({ key: hex, keyFile: '/nonexistent' });
  const sealed = box.seal('v');
  expect(SecretBox.open({ key: Buffer.from(hex, 'hex').toString('base64'), keyFile: '/x' }).unseal(sealed)).toBe('v');
  const phrase = SecretBox.open({ key: 'correct horse battery staple', keyFile: '/x' });
  expect(phrase.unseal(phrase.seal(1))).toBe(1);
  expect(() => phrase.unseal(sealed)).toThrow();
});

test('a tampered value is refused', () => {
  const box = SecretBox.open({ key: 'k', keyFile: '/x' });
  const sealed = box.seal({ a: 1 });
  sealed[sealed.length - 1]! ^= 1;
  expect(() => box.unseal(sealed)).toThrow();
});
