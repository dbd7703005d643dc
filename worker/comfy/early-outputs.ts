// Output files opened as soon as ComfyUI announces them. An `executed` websocket frame lists a
// node's files (the same shape as that node's outputs in /history) several frames before the
// prompt ends, so the /view request (or the disk open) runs while the worker waits for the end and
// reads /history, instead of after it. Only a hint: the files delivered are still the ones /history
// lists, each read once; an early open that /history does not confirm is dropped.
// A small file is read whole at once (at most 1 MiB each, MAX_EARLY_FILES per run); a larger one
// is held open, unread, its first bytes waiting in the socket's (or the file's) buffers.
import { collectOutputs, outputKey } from './history';
import { viewOfBytes, type ViewStream } from './http';
import type { OutputReader } from './output-files';
import type { ComfyEvent } from './types';

/**
 * Enough for the usual workflows; more files are opened when delivered. Kept well under the
 * ComfyUI client's socket limit (16), so held files never starve the /history read they wait for.
 */
const MAX_EARLY_FILES = 4;

/**
 * A file of at most this announced length is read whole as soon as it is open: its bytes are then
 * in memory when delivery asks (no read from disk or socket on the caller's path) and its socket or
 * file handle is released at once. Larger ones are held open, unread.
 */
const READ_AHEAD_BYTES = 1024 * 1024;

type Ref = { filename: string; subfolder: string; type: string };

interface Held {
  /** The file as delivery will get it; undefined when it could not be opened or read. */
  opened: Promise<ViewStream | undefined>;
  /** What close() must destroy meanwhile. */
  view?: ViewStream;
}

/** An OutputReader that hands out files opened early, and reads the rest from `base`. */
export class EarlyOutputs implements OutputReader {
  private readonly held = new Map<string, Held>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(
    private readonly base: OutputReader,
    private readonly includeTemp: boolean,
  ) {}

  /** Feed every websocket event of the prompt; `executed` frames open their files. */
  onEvent(event: ComfyEvent): void {
    if (event.type !== 'executed' || this.closed) return;
    const { node, output } = event.data;
    if (typeof node !== 'string' || typeof output !== 'object' || output === null) return;
    const { files } = collectOutputs({ outputs: { [node]: output as Record<string, unknown> } }, this.includeTemp);
    for (const ref of files) {
      const key = outputKey(ref);
      if (this.held.has(key) || this.held.size >= MAX_EARLY_FILES) continue;
      this.open(key, ref);
    }
  }

  private open(key: string, ref: Ref): void {
    const held: Held = {
      opened: this.base.view(ref, this.abort.signal).then(
        async (view) => {
          if (!view) return undefined;
          // A stream that breaks while held must not crash the process; destroyed, it is not used.
          view.stream.on('error', () => undefined);
          if (this.closed) {
            view.stream.destroy();
            return undefined;
          }
          held.view = view;
          if (view.bytes || view.contentLength === undefined || view.contentLength > READ_AHEAD_BYTES) return view;
          held.view = await readWhole(view);
          return held.view;
        },
        () => undefined,
      ),
    };
    this.held.set(key, held);
  }

  /** The early-opened file when there is one (each is handed out once), else a fresh read. */
  async view(ref: Ref, signal?: AbortSignal): Promise<ViewStream | undefined> {
    const key = outputKey(ref);
    const held = this.held.get(key);
    if (held) {
      this.held.delete(key);
      const view = await untilAborted(held.opened, signal);
      if (view && !view.stream.destroyed) return view;
      view?.stream.destroy();
    }
    return this.base.view(ref, signal);
  }

  /** Closes every file not handed out. Call once the run's outputs are delivered, or it failed. */
  close(): void {
    this.closed = true;
    this.abort.abort();
    for (const held of this.held.values()) held.view?.stream.destroy();
    this.held.clear();
  }
}

/** The file's bytes, as a stream over memory; undefined (read afresh later) if reading failed. */
async function readWhole(view: ViewStream): Promise<ViewStream | undefined> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of view.stream) chunks.push(chunk as Buffer);
  } catch {
    return undefined;
  }
  const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  return viewOfBytes(bytes, view.contentType);
}

/** The opening's result, or the caller's abort reason first (an early open has no caller signal). */
function untilAborted<T>(opening: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return opening;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = () => signal.removeEventListener('abort', onAbort);
    opening.then(
      (value) => (settle(), resolve(value)),
      (err: unknown) => (settle(), reject(err as Error)),
    );
  });
}
