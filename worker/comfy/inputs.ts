// Input images: `{name, image}` where image is base64, a data URI or an http(s) URL. They are
// checked when a request is admitted (so a bad one is a 400 before anything is queued) and
// fetched and uploaded to ComfyUI when the job runs.
import type { AxiosInstance } from 'axios';
import { WorkerError, invalidField } from '../errors';
import { assertPublicHttpUrl } from '../net/address-guard';
import { download } from '../net/outbound';
import type { ComfyHttp } from './http';

export interface InputImage {
  name: string;
  image: string;
}

export interface InputLimits {
  allowPrivateUrls: boolean;
  downloadMaxBytes: number;
  downloadTimeoutMs: number;
}

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const SAFE_NAME = /^[^/\\\0]+$/;

function isUrl(value: string): boolean {
  return /^https?:\/\//i.test(value);
}

/** The base64 payload of a plain string or data URI (everything up to the first comma dropped). */
function base64Payload(value: string): string {
  const comma = value.startsWith('data:') ? value.indexOf(',') : -1;
  return (comma >= 0 ? value.slice(comma + 1) : value).replace(/\s+/g, '');
}

/** Admission check of every image; throws a 400 naming the image and the problem. */
export async function checkInputImages(images: InputImage[], field: string, limits: InputLimits): Promise<void> {
  const names = new Set<string>();
  for (const [index, { name, image }] of images.entries()) {
    const at = `${field}[${index}]`;
    if (!SAFE_NAME.test(name) || name === '.' || name === '..') {
      throw invalidField(`${at}.name`, `"${name}" is not a plain file name`);
    }
    if (names.has(name)) throw invalidField(`${at}.name`, `"${name}" is used by two images`);
    names.add(name);
    if (isUrl(image)) {
      await assertPublicHttpUrl(image, `${at}.image`, { allowPrivate: limits.allowPrivateUrls });
      continue;
    }
    const payload = base64Payload(image);
    if (image.startsWith('data:') && !/^data:[^,]*;base64,/.test(image)) {
      throw invalidField(`${at}.image`, `data URI of image "${name}" is not base64-encoded`);
    }
    if (payload === '' || !BASE64.test(payload) || payload.length % 4 === 1) {
      throw invalidField(`${at}.image`, `image "${name}" is not valid base64, a data URI or an http(s) URL`);
    }
  }
}

async function imageBytes(input: InputImage, outbound: AxiosInstance, limits: InputLimits, signal: AbortSignal): Promise<Buffer> {
  if (!isUrl(input.image)) return Buffer.from(base64Payload(input.image), 'base64');
  try {
    const { bytes } = await download(outbound, input.image, {
      maxBytes: limits.downloadMaxBytes,
      timeoutMs: limits.downloadTimeoutMs,
      signal,
    });
    return bytes;
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw new WorkerError(400, 'input_image', `Input image "${input.name}" could not be downloaded: ${(err as Error).message}`, {
      field: 'images',
      details: { name: input.name },
    });
  }
}

/**
 * Uploads every image to ComfyUI. Returns how each requested name is to be referenced in the
 * workflow (ComfyUI may rename a file or put it in a subfolder; the returned name is the truth).
 */
export async function uploadInputImages(
  http: ComfyHttp,
  outbound: AxiosInstance,
  images: InputImage[],
  limits: InputLimits,
  signal: AbortSignal,
): Promise<Map<string, string>> {
  const references = new Map<string, string>();
  for (const input of images) {
    const bytes = await imageBytes(input, outbound, limits, signal);
    const uploaded = await http.uploadImage(input.name, bytes, signal);
    references.set(input.name, uploaded.subfolder ? `${uploaded.subfolder}/${uploaded.name}` : uploaded.name);
  }
  return references;
}
