// POST /upload/image with the image streamed from a file: the multipart body is written around
// the file's bytes as they are read, so an input image is never whole in memory. (http.ts's
// uploadImage sends bytes already in memory: a downloaded input.)
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import { WorkerError } from '../errors';
import { isObject } from '../util/objects';
import type { UploadedFile } from './types';

/** The answer must start within this long of the last byte sent; ComfyUI writes the file and answers. */
const ANSWER_TIMEOUT_MS = 30_000;
const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/** A form field value or file name as browsers write it in Content-Disposition (WHATWG). */
function quoted(text: string): string {
  return text.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

export async function uploadImageFile(
  baseUrl: string,
  name: string,
  file: { path: string },
  signal?: AbortSignal,
): Promise<UploadedFile> {
  let size: number;
  try {
    size = (await fs.promises.stat(file.path)).size;
  } catch (err) {
    throw new WorkerError(
      500,
      'input_image',
      `Input image "${name}" is no longer on the data volume (${(err as Error).message})`,
    );
  }
  const boundary = `----comfyui-worker-${randomBytes(12).toString('hex')}`;
  const field = (key: string, value: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${key}"\r\n\r\n${value}\r\n`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${quoted(name)}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n${field('type', 'input')}${field('overwrite', 'true')}--${boundary}--\r\n`);
  const url = new URL(`${baseUrl.replace(/\/+$/, '')}/upload/image`);
  const client = url.protocol === 'https:' ? https : http;

  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = client.request(url, {
      method: 'POST',
      agent: url.protocol === 'https:' ? agents.https : agents.http,
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': head.length + size + tail.length,
      },
      signal,
    });
    req.setTimeout(ANSWER_TIMEOUT_MS, () => req.destroy(new Error('ETIMEDOUT')));
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 64 * 1024) body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.write(head);
    pipeline(fs.createReadStream(file.path), req, { end: false })
      .then(() => req.end(tail))
      .catch((err: unknown) => req.destroy(err as Error));
  }).catch((err: unknown) => {
    if (signal?.aborted) throw signal.reason instanceof WorkerError ? signal.reason : err;
    const code = (err as { code?: string }).code ?? (err as Error).message;
    throw new WorkerError(502, 'comfy_connection', `Cannot connect to ComfyUI at ${baseUrl} (/upload/image): ${code}`, {
      cause: err,
    });
  });

  if (answer.status !== 200) {
    throw new WorkerError(502, 'input_image', `ComfyUI answered ${answer.status} when uploading input image ${name}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(answer.body);
  } catch {
    body = undefined;
  }
  if (!isObject(body) || typeof body.name !== 'string') {
    throw new WorkerError(502, 'input_image', `ComfyUI's /upload/image answer for ${name} has no name`);
  }
  return {
    name: body.name,
    subfolder: typeof body.subfolder === 'string' ? body.subfolder : '',
    type: typeof body.type === 'string' ? body.type : 'input',
  };
}
