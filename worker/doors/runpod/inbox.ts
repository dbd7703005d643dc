// The jobs this worker took from RunPod and has not answered yet, one small file per job in a
// folder beside the job database. A job is written here before it is stored and run, and removed
// once RunPod has its result, so a worker that dies mid-job finds at its next start every job it
// owes an answer: the job store then says whether it ran, is still running, or never got there.
// Only the id is kept; the input (which may hold credentials) lives in the job store.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const entrySchema = z.object({ id: z.string(), takenAt: z.number() });
export type InboxEntry = z.infer<typeof entrySchema>;

export class Inbox {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
  }

  private file(id: string): string {
    return path.join(this.dir, `${encodeURIComponent(id)}.json`);
  }

  /** Records a taken job (written whole, then renamed: a crash leaves the old state or the new). */
  add(id: string, takenAt = Date.now()): void {
    const file = this.file(id);
    const temp = `${file}.tmp`;
    fs.writeFileSync(temp, JSON.stringify({ id, takenAt }));
    fs.renameSync(temp, file);
  }

  remove(id: string): void {
    fs.rmSync(this.file(id), { force: true });
  }

  has(id: string): boolean {
    return fs.existsSync(this.file(id));
  }

  /** Every job owed an answer, oldest first. Unreadable files are reported, not fatal. */
  list(onBad: (file: string, err: unknown) => void = () => undefined): InboxEntry[] {
    const entries: InboxEntry[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.dir, name);
      try {
        entries.push(entrySchema.parse(JSON.parse(fs.readFileSync(file, 'utf8'))));
      } catch (err) {
        onBad(file, err);
      }
    }
    return entries.sort((a, b) => a.takenAt - b.takenAt);
  }
}
