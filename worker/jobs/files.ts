// The files of jobs on the data volume, in a folder beside the job database (`<db>-files/`), so
// payloads are written once and read as streams instead of living in the database or the heap:
//   inputs/<uuid>          an input image, decoded while its request was read (or when its job
//                          was stored); deleted when the job ends
//   outputs/<key>/<index>  an output kept for inline answers; deleted with the job
// The store decides the key (a job's seq: never reused, so a deleted job's folder can be removed
// at leisure) and records the paths with the job; this class owns the folder. Files no job
// refers to (a crash between writing and recording, or between ending and deleting) are swept by
// the upkeep. A future store backend keeps the same layout.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ImageSpool, isSpoolable } from '../comfy/image-spool';
import type { OutputSink } from '../delivery/types';
import { ConfigError } from '../errors';
import type { StringSink } from '../util/json-divert';

const INPUTS = 'inputs';
const OUTPUTS = 'outputs';

/** The input files one request wrote: deleted when it is released, unless a job took them. */
export interface InputSpool {
  /** A new file to write an input image to (absolute path). */
  create(): string;
  /**
   * Where an input image's text goes while the body is read (decoded into a new file), given its
   * first bytes as in the JSON text; undefined for a URL, which stays text.
   */
  image(head: Buffer): StringSink | undefined;
  /** The request is over: delete its files that no job took. */
  release(): void;
}

/** The job files folder of a database: beside it, named after it. */
export function filesFolderOf(dbPath: string): string {
  return `${dbPath}-files`;
}

export class JobFiles {
  readonly root: string;
  /** Input files requests are writing or hold, not yet recorded with a job (the sweep leaves them). */
  private readonly live = new Set<string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    try {
      for (const sub of [INPUTS, OUTPUTS]) fs.mkdirSync(path.join(this.root, sub), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ConfigError(`SQLITE_DB_PATH: cannot create the job files folder ${this.root}: ${(err as Error).message}`);
    }
  }

  spool(): InputSpool {
    const mine: string[] = [];
    const create = () => {
      const file = path.join(this.root, INPUTS, randomUUID());
      this.live.add(file);
      mine.push(file);
      return file;
    };
    return {
      create,
      image: (head) => (isSpoolable(head) ? new ImageSpool(create()) : undefined),
      release: () => {
        for (const file of mine.splice(0)) if (this.live.delete(file)) this.remove(file);
      },
    };
  }

  /** Writes an input image's bytes to a new file (for images that came as text); live until adopted. */
  writeInput(bytes: Buffer): string {
    const file = path.join(this.root, INPUTS, randomUUID());
    fs.writeFileSync(file, bytes, { flag: 'wx', mode: 0o600 });
    this.live.add(file);
    return file;
  }

  /** A job now refers to this input file: it is the job's, deleted when the job ends. */
  adopt(file: string): void {
    this.live.delete(file);
  }

  /** Deletes a live input file that no job took after all. */
  discard(file: string): void {
    if (this.live.delete(file)) this.remove(file);
  }

  /** The path recorded with a job for a file in this folder. */
  relative(file: string): string {
    const rel = path.relative(this.root, file);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${file} is not in the job files folder ${this.root}`);
    return rel.split(path.sep).join('/');
  }

  /** The file a recorded path names (never outside the folder). */
  resolve(rel: string): string {
    const file = path.resolve(this.root, rel);
    if (!file.startsWith(this.root + path.sep)) throw new Error(`"${rel}" is not a path in the job files folder`);
    return file;
  }

  /** Where a job's outputs kept for inline answers go. */
  outputs(key: string): OutputSink {
    const dir = path.join(this.root, OUTPUTS, key);
    return {
      file: (index) => {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        return path.join(dir, String(index));
      },
    };
  }

  /** Deletes files by their recorded paths (in the background; what fails is swept later). */
  removeRecorded(rels: string[]): void {
    for (const rel of rels) this.remove(this.resolve(rel));
  }

  /** Deletes a job's outputs folder (in the background). */
  removeOutputs(key: string): void {
    this.remove(path.join(this.root, OUTPUTS, key));
  }

  /**
   * Deletes what no job refers to: input files neither live nor `referenced` (recorded paths),
   * output folders whose key `isJob` denies. Returns how many were deleted.
   */
  async sweep(referenced: Set<string>, isJob: (key: string) => boolean): Promise<number> {
    let deleted = 0;
    for (const name of await fs.promises.readdir(path.join(this.root, INPUTS))) {
      const file = path.join(this.root, INPUTS, name);
      if (this.live.has(file) || referenced.has(`${INPUTS}/${name}`)) continue;
      // A request may have created it since the list was read: only files older than a minute go.
      const stat = await fs.promises.stat(file).catch(() => undefined);
      if (!stat || Date.now() - stat.mtimeMs < 60_000 || this.live.has(file)) continue;
      await fs.promises.rm(file, { force: true });
      deleted++;
    }
    for (const key of await fs.promises.readdir(path.join(this.root, OUTPUTS))) {
      if (isJob(key)) continue;
      await fs.promises.rm(path.join(this.root, OUTPUTS, key), { recursive: true, force: true });
      deleted++;
    }
    return deleted;
  }

  private remove(file: string): void {
    // A file that cannot be deleted now is an orphan the next sweep deletes.
    fs.promises.rm(file, { recursive: true, force: true }).catch(() => undefined);
  }
}
