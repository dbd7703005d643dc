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
import { TransferGc } from '../util/transfer-gc';

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

export type InlineFile =
  { ok: true; size: number; contentType: string | undefined; bytes?: Buffer } | { ok: false; size: number; error: string };

/**
 * An output whose announced length is at most this is read whole, written to its file in one
 * write, and its bytes kept with the job's final record so the waiting caller is answered without
 * reading the file back (the file is still written before the job is recorded as completed, for
 * restarts and /status). Larger ones, or ones of unknown length, stream to the file.
 */
export const KEEP_IN_MEMORY_BYTES = 1024 * 1024;
/** Kept bytes up to this are written synchronously: one write(2) costs less than three thread-pool turns. */
const SYNC_WRITE_BYTES = 256 * 1024;

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
  if (view.contentLength !== undefined && view.contentLength <= KEEP_IN_MEMORY_BYTES) {
    return keepSmall(view, maxBytes, file, signal, tooBig);
  }
  let size = 0;
  const collector = new TransferGc();
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      collector.count(chunk.length);
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

/** A small output of announced length: read whole, written at once, its bytes returned with it. */
async function keepSmall(
  view: ViewStream,
  maxBytes: number,
  file: string,
  signal: AbortSignal,
  tooBig: (size: number) => InlineFile,
): Promise<InlineFile> {
  // Read whole already (an early open, a small file from disk): no stream to go through.
  const bytes = view.bytes ?? (await readAll(view, maxBytes, signal));
  if (bytes === undefined || bytes.length > maxBytes) {
    view.stream.destroy();
    return tooBig(view.contentLength ?? bytes?.length ?? maxBytes + 1);
  }
  const size = bytes.length;
  try {
    if (size <= SYNC_WRITE_BYTES) fs.writeFileSync(file, bytes, { mode: 0o600 });
    else await fs.promises.writeFile(file, bytes, { mode: 0o600, signal });
  } catch (err) {
    await fs.promises.rm(file, { force: true });
    if (signal.aborted) throw signal.reason;
    throw err;
  }
  return { ok: true, size, contentType: view.contentType, bytes };
}

/** The stream's bytes, or undefined as soon as they pass `maxBytes` (the stream is then destroyed). */
async function readAll(view: ViewStream, maxBytes: number, signal: AbortSignal): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  const abort = () => view.stream.destroy(signal.reason as Error);
  signal.addEventListener('abort', abort, { once: true });
  try {
    if (signal.aborted) throw signal.reason;
    for await (const chunk of view.stream) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        view.stream.destroy();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  } finally {
    signal.removeEventListener('abort', abort);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

export function describe(ref: OutputFileRef): string {
  return ref.subfolder ? `${ref.subfolder}/${ref.filename}` : ref.filename;
}
