// Inline delivery: an output file's bytes, streamed from ComfyUI's /view (or its output folder, see
// comfy/output-files.ts) into the job's file on the
// data volume (never whole in memory), capped per file by OUTPUT_BASE64_MAX_BYTES. A file over the
// cap is reported on that output, not fatal to the job.
import fs from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ViewStream } from '../comfy/http';
import type { OutputReader } from '../comfy/output-files';
import type { OutputFileRef } from '../comfy/types';
import { WorkerError } from '../errors';
import { sleep } from '../util/time';

/** ComfyUI may list a file a moment before /view can serve it: retry a 404 briefly. */
const VIEW_404_RETRIES = 3;
const VIEW_404_DELAY_MS = 200;

/** Opens an output file (from disk or /view), retrying a 404 a few times before calling it missing. */
export async function openOutput(http: OutputReader, ref: OutputFileRef, signal: AbortSignal): Promise<ViewStream> {
  for (let attempt = 0; ; attempt++) {
    const view = await http.view(ref, signal);
    if (view) return view;
    if (attempt >= VIEW_404_RETRIES) {
      throw new WorkerError(502, 'output_error', `Output ${describe(ref)} is missing on ComfyUI (/view answered 404)`);
    }
    await sleep(VIEW_404_DELAY_MS, signal);
  }
}

export type InlineFile = { ok: true; size: number; contentType: string | undefined } | { ok: false; size: number; error: string };

/** Writes the output to `file`; over `maxBytes`, nothing is kept (the file is removed). */
export async function keepInline(
  http: OutputReader,
  ref: OutputFileRef,
  maxBytes: number,
  file: string,
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
  let size = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      done(size > maxBytes ? new OverCap() : null, chunk);
    },
  });
  try {
    await pipeline(view.stream, cap, fs.createWriteStream(file, { mode: 0o600 }), { signal });
  } catch (err) {
    await fs.promises.rm(file, { force: true });
    if (err instanceof OverCap) return tooBig(view.contentLength ?? size);
    if (signal.aborted) throw signal.reason;
    throw err;
  }
  return { ok: true, size, contentType: view.contentType };
}

class OverCap extends Error {}

export function describe(ref: OutputFileRef): string {
  return ref.subfolder ? `${ref.subfolder}/${ref.filename}` : ref.filename;
}
