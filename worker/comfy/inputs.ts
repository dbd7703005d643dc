// Input images: `{name, image}` where image is base64, a data URI or an http(s) URL. They are
// checked when a request is admitted (so a bad one is a 400 before anything is queued) and
// fetched and uploaded to ComfyUI when the job runs. Base64 images are decoded into a file on the
// data volume (a SpooledImage) while the request body is read, or when the job is stored, and
// streamed from there to ComfyUI's /upload/image.
import type { AxiosInstance } from 'axios';
import { WorkerError, invalidField } from '../errors';
import { assertPublicHttpUrl } from '../net/address-guard';
import { download } from '../net/outbound';
import type { ComfyHttp } from './http';
import { uploadImageFile } from './upload';

/** What was wrong with a spooled image's text: not base64, or a data URI not in base64. */
export type SpoolProblem = 'base64' | 'data_uri';

/** An input image's decoded bytes, in a file on the data volume until its job ends. */
export class SpooledImage {
  constructor(
    readonly path: string,
    readonly size: number,
    /** Set when the text was not valid: the admission check refuses the request. */
    readonly problem?: SpoolProblem,
  ) {}
}

export interface InputImage {
  name: string;
  /** An http(s) URL, base64 or a data URI (text), or the bytes already decoded to a file. */
  image: string | SpooledImage;
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
export function base64Payload(value: string): string {
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
    if (typeof image !== 'string') {
      if (image.problem === 'data_uri') throw invalidField(`${at}.image`, dataUriError(name));
      if (image.problem !== undefined) throw invalidField(`${at}.image`, base64Error(name));
      continue;
    }
    if (isUrl(image)) {
      await assertPublicHttpUrl(image, `${at}.image`, { allowPrivate: limits.allowPrivateUrls });
      continue;
    }
    const payload = base64Payload(image);
    if (image.startsWith('data:') && !/^data:[^,]*;base64,/.test(image)) {
      throw invalidField(`${at}.image`, dataUriError(name));
    }
    if (payload === '' || !BASE64.test(payload) || payload.length % 4 === 1) {
      throw invalidField(`${at}.image`, base64Error(name));
    }
  }
}

/** The bytes of an image given as base64 or a data URI (checked at admission); undefined for a URL. */
export function imageTextBytes(image: string): Buffer | undefined {
  return isUrl(image) ? undefined : Buffer.from(base64Payload(image), 'base64');
}

const dataUriError = (name: string) => `data URI of image "${name}" is not base64-encoded`;
const base64Error = (name: string) => `image "${name}" is not valid base64, a data URI or an http(s) URL`;

async function imageBytes(
  input: InputImage & { image: string },
  outbound: AxiosInstance,
  limits: InputLimits,
  signal: AbortSignal,
): Promise<Buffer> {
  const decoded = imageTextBytes(input.image);
  if (decoded) return decoded;
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
    const { image } = input;
    const uploaded =
      typeof image === 'string'
        ? await http.uploadImage(input.name, await imageBytes({ ...input, image }, outbound, limits, signal), signal)
        : await uploadImageFile(http.baseUrl, input.name, image, signal);
    references.set(input.name, uploaded.subfolder ? `${uploaded.subfolder}/${uploaded.name}` : uploaded.name);
  }
  return references;
}
