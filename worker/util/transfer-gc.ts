// Node allocates a new buffer for every chunk it reads from a socket or a file. Dead once written
// on, those buffers are freed only by V8's next young-generation collection, and V8 forces one for
// them only once several MB wait; little else in a transfer allocates. So a large transfer through
// the worker (an output from /view into its file or into an S3 upload) held several MB of dead
// buffers at its peak (perf/bytes: +8 to +10 MB for one 8 MB output). When the process runs with
// --expose-gc (every start command the project ships passes it), a transfer asks for a
// young-generation collection each time it has moved COLLECT_EVERY_BYTES: each takes well under a
// millisecond, and transfers smaller than that never ask. Without the flag nothing happens.

/** Bytes a transfer moves between two collections. */
export const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/** The process's young-generation collection, when the process exposes its collector. */
export function exposedMinorGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc;
  return gc && (() => gc({ type: 'minor' }));
}

/** One transfer's bytes, and a collection each time another COLLECT_EVERY_BYTES has passed. */
export class TransferGc {
  private moved = 0;

  constructor(
    private readonly collect: (() => void) | undefined = exposedMinorGc(),
    private readonly every = COLLECT_EVERY_BYTES,
  ) {}

  /** Counts a chunk that has passed. */
  count(bytes: number): void {
    const before = Math.floor(this.moved / this.every);
    this.moved += bytes;
    if (this.collect && Math.floor(this.moved / this.every) > before) this.collect();
  }
}
