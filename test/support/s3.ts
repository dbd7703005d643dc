// A real S3-compatible server (s3rver, installed by npm ci) on 127.0.0.1 for delivery tests.
// It knows one credential pair, S3RVER / S3RVER, and refuses unknown access keys.
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { tempDir } from './tmp';

export const S3_KEY = 'S3RVER';
export const S3_SECRET = 'S3RVER';

export interface TestS3 {
  endpoint: string;
  port: number;
  get(bucket: string, key: string): Promise<Buffer | undefined>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startS3(buckets: string[] = ['outputs']): Promise<TestS3> {
  const directory = tempDir('s3-');
  let port = 0;
  let server: S3rver | undefined;
  const start = async () => {
    server = new S3rver({
      port,
      address: '127.0.0.1',
      silent: true,
      directory,
      configureBuckets: buckets.map((name) => ({ name })),
    });
    const address = (await server.run()) as AddressInfo;
    port = address.port;
  };
  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET },
  });
  return {
    endpoint,
    port,
    async get(bucket, key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await res.Body!.transformToByteArray());
      } catch {
        return undefined;
      }
    },
    async stop() {
      await server?.close();
      server = undefined;
    },
    start,
  };
}
