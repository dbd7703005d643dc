import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Jest evaluates this module afresh for every test file, while the file loads, so the hook below
// is registered once per file and removes every folder the file made.
const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed after the test file finishes. */
export function tempDir(prefix = 'cw-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}
