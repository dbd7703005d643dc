import { ConfigError, loadConfig } from '../config';
import { Readable } from 'node:stream';
import { S3_KEY, S3_SECRET, startS3 } from '../../test/support/s3';
import {
  S3Clients,
  missingS3Settings,
  objectKey,
  parseBucketEndpoint,
  resolveS3Destination,
  s3Defaults,
  uploadStream,
} from './s3';

describe('BUCKET_ENDPOINT_URL', () => {
  test.each([
    [
      'https://my-bucket.s3.eu-west-1.amazonaws.com',
      { bucket: 'my-bucket', region: 'eu-west-1', endpoint: undefined, forcePathStyle: false },
    ],
    [
      'https://my-bucket.s3.amazonaws.com',
      { bucket: 'my-bucket', region: 'us-east-1', endpoint: undefined, forcePathStyle: false },
    ],
    [
      'https://abc.r2.cloudflarestorage.com/renders',
      { bucket: 'renders', endpoint: 'https://abc.r2.cloudflarestorage.com', forcePathStyle: true },
    ],
    ['http://minio:9000/out/', { bucket: 'out', endpoint: 'http://minio:9000', forcePathStyle: true }],
  ])('%s', (url, expected) => {
    expect(parseBucketEndpoint(url)).toEqual(expected);
  });

  test('a URL without a bucket is a configuration error naming the variable', () => {
    expect(() => parseBucketEndpoint('https://s3.example.com')).toThrow(ConfigError);
    expect(() => parseBucketEndpoint('https://s3.example.com')).toThrow(/^BUCKET_ENDPOINT_URL: /);
  });
});

describe('settings precedence', () => {
  const env = loadConfig({
    S3_ACCESS_KEY_ID: 'env-key',
    S3_SECRET_ACCESS_KEY: 'env-secret',
    S3_BUCKET_NAME: 'env-bucket',
    S3_ENDPOINT_URL: 'https://s3.backblaze.example',
    S3_REGION: 'eu-central-1',
    S3_PREFIX: '/env/prefix/',
  }).s3;

  test('environment alone', () => {
    expect(resolveS3Destination(s3Defaults(env), undefined, {})).toEqual({
      bucket: 'env-bucket',
      region: 'eu-central-1',
      endpoint: 'https://s3.backblaze.example',
      forcePathStyle: true,
      prefix: 'env/prefix',
      accessKeyId: 'env-key',
      secretAccessKey: 'env-secret',
      untrustedEndpoint: false,
    });
  });

  test('request fields win one by one; the rest comes from the environment', () => {
    const dest = resolveS3Destination(s3Defaults(env), { bucketName: 'req-bucket' }, { s3SecretAccessKey: 'req-secret' });
    expect(dest).toMatchObject({
      bucket: 'req-bucket',
      accessKeyId: 'env-key',
      secretAccessKey: 'req-secret',
      endpoint: 'https://s3.backblaze.example',
    });
  });

  test('S3_* first, BUCKET_* fills the gaps', () => {
    const mixed = loadConfig({
      S3_BUCKET_NAME: 'named',
      BUCKET_ENDPOINT_URL: 'https://from-url.s3.us-west-2.amazonaws.com',
      BUCKET_ACCESS_KEY_ID: 'bk',
      BUCKET_SECRET_ACCESS_KEY: 'bs',
    }).s3;
    expect(resolveS3Destination(s3Defaults(mixed), undefined, {})).toMatchObject({
      bucket: 'named',
      region: 'us-west-2',
      endpoint: undefined,
      forcePathStyle: false,
      accessKeyId: 'bk',
    });
  });

  test('nothing configured: no upload; what is missing is named', () => {
    expect(resolveS3Destination({}, undefined, {})).toBeUndefined();
    expect(missingS3Settings({}, { bucketName: 'b' }, {})).toEqual([
      'access_key_id (S3_ACCESS_KEY_ID)',
      'secret_access_key (S3_SECRET_ACCESS_KEY)',
    ]);
  });

  test('AWS endpoints use virtual-hosted addressing unless told otherwise', () => {
    const aws = resolveS3Destination(
      { accessKeyId: 'k', secretAccessKey: 's', bucket: 'b' },
      { endpointUrl: 'https://s3.us-east-2.amazonaws.com' },
      {},
    );
    expect(aws?.forcePathStyle).toBe(false);
    const forced = loadConfig({ S3_FORCE_PATH_STYLE: 'true', S3_ENDPOINT_URL: 'https://s3.amazonaws.com' }).s3;
    expect(s3Defaults(forced).forcePathStyle).toBe(true);
  });
});

test('object key: <prefix>/<job id>/<subfolder>/<filename> without empty parts', () => {
  const dest = {
    bucket: 'b',
    region: 'r',
    endpoint: undefined,
    forcePathStyle: false,
    accessKeyId: 'k',
    secretAccessKey: 's',
    untrustedEndpoint: false,
  };
  expect(objectKey({ ...dest, prefix: 'p/q' }, 'job-1', 'audio', 'a.flac')).toBe('p/q/job-1/audio/a.flac');
  expect(objectKey({ ...dest, prefix: '' }, 'job-1', '', 'img.png')).toBe('job-1/img.png');
});

describe('S3Clients', () => {
  test("a request-given endpoint is held to the private-address rule at connect time; the request's attempts win", async () => {
    const s3 = await startS3();
    const base = {
      bucket: 'outputs',
      region: 'us-east-1',
      forcePathStyle: true,
      prefix: '',
      accessKeyId: S3_KEY,
      secretAccessKey: S3_SECRET,
    };
    // localhost passes a naive check of the URL but resolves to loopback.
    const dest = { ...base, endpoint: s3.endpoint.replace('127.0.0.1', 'localhost'), untrustedEndpoint: true };
    const strict = new S3Clients({ connectTimeoutMs: 2000, attempts: 3, presignExpiresS: 60, allowPrivate: false });
    const lenient = new S3Clients({ connectTimeoutMs: 2000, attempts: 3, presignExpiresS: 60, allowPrivate: true });
    try {
      const upload = (clients: S3Clients) =>
        uploadStream(
          clients.for(dest),
          dest,
          'k.txt',
          Readable.from([Buffer.from('hi')]),
          'text/plain',
          new AbortController().signal,
        );
      await expect(upload(strict)).rejects.toThrow(/private address/);
      await expect(upload(lenient)).resolves.toBeUndefined();
      expect(strict.attemptsFor(dest)).toBe(3);
      expect(strict.attemptsFor({ ...dest, attempts: 1 })).toBe(1);
    } finally {
      strict.destroy();
      lenient.destroy();
      await s3.stop();
    }
  });
});

describe('uploadStream', () => {
  const MIB = 1024 * 1024;
  test.each([
    ['empty', 0],
    ['one byte', 1],
    ['exactly one part (5 MiB)', 5 * MIB],
    ['one part and a byte', 5 * MIB + 1],
    ['two parts and a bit, in odd chunks', 10 * MIB + 12_345],
  ])('%s: the object is the bytes sent, in one PUT or equal parts', async (_name, size) => {
    const s3 = await startS3();
    const clients = new S3Clients({ connectTimeoutMs: 2000, attempts: 1, presignExpiresS: 60, allowPrivate: true });
    const dest = {
      bucket: 'outputs',
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      prefix: '',
      accessKeyId: S3_KEY,
      secretAccessKey: S3_SECRET,
      untrustedEndpoint: false,
    };
    try {
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) bytes[i] = (i / 4096) % 251; // not uniform: parts out of order would show
      const chunks = [];
      for (let i = 0; i < size; i += 70_001) chunks.push(bytes.subarray(i, i + 70_001));
      const signal = new AbortController().signal;
      await uploadStream(clients.for(dest), dest, 'k.bin', Readable.from(chunks), 'application/octet-stream', signal);
      expect((await s3.get('outputs', 'k.bin'))?.equals(bytes)).toBe(true);
    } finally {
      clients.destroy();
      await s3.stop();
    }
  });
});
