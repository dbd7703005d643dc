// Request credentials (S3 keys, webhook secrets, Comfy.org keys) are stored encrypted with
// AES-256-GCM and deleted when the job ends. The key comes from JOB_SECRETS_KEY, or from a key
// file the worker creates once with 0600 permissions.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function keyFromText(text: string): Buffer {
  if (/^[0-9a-f]{64}$/i.test(text)) return Buffer.from(text, 'hex');
  const decoded = Buffer.from(text, 'base64');
  if (decoded.length === 32 && /^[A-Za-z0-9+/]{43}=?$/.test(text)) return decoded;
  // Any other text is a passphrase.
  return crypto.createHash('sha256').update(text, 'utf8').digest();
}

function keyFromFile(file: string): Buffer {
  try {
    return keyFromText(fs.readFileSync(file, 'utf8').trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(`JOB_SECRETS_KEY_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const key = crypto.randomBytes(32);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // 'wx': never overwrite a key another process wrote meanwhile.
    fs.writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return keyFromFile(file);
    throw new ConfigError(`JOB_SECRETS_KEY_FILE: cannot create ${file}: ${(err as Error).message}`);
  }
  return key;
}

export class SecretBox {
  private readonly key: Buffer;

  private constructor(key: Buffer) {
    this.key = key;
  }

  static open(opts: { key?: string; keyFile: string }): SecretBox {
    return new SecretBox(opts.key !== undefined ? keyFromText(opts.key) : keyFromFile(opts.keyFile));
  }

  seal(value: unknown): Buffer {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
  }

  /** Decrypts a sealed value; throws if it was sealed with another key or tampered with. */
  unseal<T>(sealed: Buffer): T {
    if (sealed[0] !== VERSION) throw new Error('unknown secret format');
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAuthTag(tag);
    const body = Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
    return JSON.parse(body.toString('utf8')) as T;
  }
}
