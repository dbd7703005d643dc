// Inline delivery: an output file's bytes, read from ComfyUI's /view into memory, capped per file
// by OUTPUT_BASE64_MAX_BYTES. A file over the cap is reported on that output, not fatal to the job.
import type { Readable } from 'node:stream';
import type { ComfyHttp, ViewStream } from '../comfy/http';
import type { OutputFileRef } from '../comfy/types';
import { WorkerError } from '../errors';
import { sleep } from '../util/time';

/** ComfyUI may list a file a moment before /view can serve it: retry a 404 briefly. */
const VIEW_404_RETRIES = 3;
const VIEW_404_DELAY_MS = 200;

/** Opens an output file on /view, retrying a 404 a few times before calling it missing. */
export async function openOutput(http: ComfyHttp, ref: OutputFileRef, signal: AbortSignal): Promise<ViewStream> {
  for (let attempt = 0; ; attempt++) {
    const view = await http.view(ref, signal);
    if (view) return view;
    if (attempt >= VIEW_404_RETRIES) {
      throw new WorkerError(502, 'output_error', `Output ${describe(ref)} is missing on ComfyUI (/view answered 404)`);
    }
    await sleep(VIEW_404_DELAY_MS, signal);
  }
}

export type InlineFile =
  { ok: true; bytes: Buffer; contentType: string | undefined } | { ok: false; size: number; error: string };

export async function readInline(
  http: ComfyHttp,
  ref: OutputFileRef,
  maxBytes: number,
  signal: AbortSignal,
): Promise<InlineFile> {
  const view = await openOutput(http, ref, signal);
  const tooBig = (size: number): InlineFile => ({
    ok: false,
    size,
    error: `file size ${size} exceeds OUTPUT_BASE64_MAX_BYTES (${maxBytes}); not inlined`,
  });
  if (view.contentLength !== undefined && view.contentLength > maxBytes) {
    view.stream.destroy();
    return tooBig(view.contentLength);
  }
  const bytes = await readCapped(view.stream, maxBytes);
  if (bytes === undefined) return tooBig(view.contentLength ?? maxBytes + 1);
  return { ok: true, bytes, contentType: view.contentType };
}

/** The whole stream, or undefined (and the stream destroyed) once it passes maxBytes. */
async function readCapped(stream: Readable, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > maxBytes) {
      stream.destroy();
      return undefined;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}

export function describe(ref: OutputFileRef): string {
  return ref.subfolder ? `${ref.subfolder}/${ref.filename}` : ref.filename;
}
