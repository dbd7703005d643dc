// Output files read straight from ComfyUI's folders when the worker shares its disk
// (COMFYUI_OUTPUT_DIR, COMFYUI_TEMP_DIR): no /view round trip. The checks are ComfyUI's own for
// /view (no empty name, no leading '/', no '..', only the base name counts, a subfolder may not
// leave the folder), plus one ComfyUI does not make: the file's real path, symlinks resolved, must
// be inside the folder's real path. A file that is not there (another machine's ComfyUI, not yet
// flushed) is read through /view instead; a name that tries to escape is refused outright.
import fs from 'node:fs';
import path from 'node:path';
import { WorkerError } from '../errors';
import { viewOfBytes, type ComfyHttp, type ViewStream } from './http';

export interface OutputFolders {
  /** ComfyUI's output folder (`--output-directory`), for `type: "output"` files. */
  output?: string;
  /** ComfyUI's temp folder, for `type: "temp"` previews. */
  temp?: string;
}

type Ref = { filename: string; subfolder: string; type: string };

/** Where outputs are read from: ComfyUI's folders first when configured, else (or then) /view. */
export interface OutputReader {
  view(ref: Ref, signal?: AbortSignal): Promise<ViewStream | undefined>;
}

function refused(ref: Ref, why: string): WorkerError {
  return new WorkerError(502, 'output_error', `Output ${JSON.stringify(ref.filename)} refused: ${why}`);
}

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The file's path in `folder`, or a refusal when the name or subfolder would leave it. Mirrors
 * ComfyUI's /view (server.py): the name may not start with '/' nor contain '..'; the subfolder
 * joined to the folder must stay in it; then only the name's base part is used.
 */
export function outputPath(folder: string, ref: Ref): string {
  const name = ref.filename;
  if (name === '' || name.includes('\0') || ref.subfolder.includes('\0')) throw refused(ref, 'empty name or NUL byte');
  if (name.startsWith('/') || name.startsWith('\\') || name.includes('..') || path.isAbsolute(name)) {
    throw refused(ref, 'an absolute name or one with ".." leaves the output folder');
  }
  const root = path.resolve(folder);
  const dir = path.resolve(root, ref.subfolder);
  if (!inside(root, dir)) throw refused(ref, `subfolder ${JSON.stringify(ref.subfolder)} leaves the output folder`);
  return path.join(dir, path.basename(name));
}

/**
 * Files up to this size are read whole at once. The output folder is a local disk (ComfyUI's own,
 * in the same container or pod), where a few blocking calls on a file ComfyUI has just written take
 * tens of microseconds: less than the thread-pool turns of an asynchronous open, stat and read,
 * whose callbacks would land between the frames and answers at the end of the prompt. Larger files
 * stream.
 */
const READ_AT_ONCE_BYTES = 256 * 1024;

/** Opens the file from disk; undefined when it is not there (or not a regular file). */
export async function openOutputFile(folder: string, ref: Ref): Promise<ViewStream | undefined> {
  const file = outputPath(folder, ref);
  let fd: number;
  try {
    const real = fs.realpathSync.native(file);
    if (!inside(fs.realpathSync.native(folder), real)) throw refused(ref, 'a symbolic link leads out of the output folder');
    fd = fs.openSync(real, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let streaming = false;
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return undefined;
    if (stat.size > READ_AT_ONCE_BYTES) {
      streaming = true; // the stream closes the file
      return { stream: fs.createReadStream('', { fd, autoClose: true }), contentType: undefined, contentLength: stat.size };
    }
    return viewOfBytes(readStart(fd, stat.size), undefined);
  } finally {
    if (!streaming) fs.closeSync(fd);
  }
}

/** Up to `size` bytes from the start of the file (fewer if it shrank meanwhile). */
function readStart(fd: number, size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  let read = 0;
  while (read < size) {
    const n = fs.readSync(fd, bytes, read, size - read, read);
    if (n === 0) break;
    read += n;
  }
  return read === size ? bytes : bytes.subarray(0, read);
}

/** Reads outputs from ComfyUI's folders, falling back to /view for files not found there. */
export function outputReader(http: ComfyHttp, folders: OutputFolders): OutputReader {
  if (folders.output === undefined && folders.temp === undefined) return http;
  return {
    async view(ref, signal) {
      const folder = ref.type === 'output' ? folders.output : ref.type === 'temp' ? folders.temp : undefined;
      if (folder !== undefined) {
        const local = await openOutputFile(folder, ref);
        if (local) return local;
      }
      return http.view(ref, signal);
    },
  };
}
