// The bytes of a job's small inline outputs, as the runner kept them while writing their files,
// attached to the job's final record (the object the `finished` event carries to the waiting
// caller): that caller's answer uses them instead of looking the files up and reading them back.
// Held weakly, so they go with the record; a record read from the store has none and its answer
// reads the files, as after a restart.
import type { JobRecord } from './types';

const kept = new WeakMap<JobRecord, ReadonlyArray<Buffer | undefined>>();

/** Attaches the kept outputs' bytes (by their `blob` index) to a final record. */
export function attachKeptBytes(record: JobRecord, files: ReadonlyArray<{ bytes?: Buffer }>): void {
  if (files.some((file) => file.bytes))
    kept.set(
      record,
      files.map((file) => file.bytes),
    );
}

/** The bytes of output `blob` of this record, when the runner that finished it kept them. */
export function keptBytesOf(record: JobRecord, blob: number): Buffer | undefined {
  return kept.get(record)?.[blob];
}
