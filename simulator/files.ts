// ComfyUI's file-system rules: Python's posixpath semantics (os.path.join drops everything before
// an absolute part, normpath, commonpath), folder_paths.annotated_filepath, get_save_image_path's
// subfolder/counter rules, and mimetypes guesses. Paths are computed on a virtual root so that
// messages can show the recorded install folder while files live under the simulator's dataDir.

import { readdirSync, statSync } from 'node:fs';
import { join as nodeJoin } from 'node:path';
import { PyException, pyInt } from './pyvalues';

/** Where the recorded server was installed; error messages and tracebacks show this. */
export const DISPLAY_ROOT = '/opt/ComfyUI';

export type FolderType = 'output' | 'input' | 'temp';

export function pyJoin(...parts: string[]): string {
  let out = '';
  for (const p of parts) {
    if (p.startsWith('/')) out = p;
    else if (out === '' || out.endsWith('/')) out += p;
    else out += '/' + p;
  }
  return out;
}

export function pyNormpath(p: string): string {
  if (p === '') return '.';
  const initial = p.startsWith('/') ? (p.startsWith('//') && !p.startsWith('///') ? 2 : 1) : 0;
  const comps: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c !== '..' || (initial === 0 && comps.length === 0) || (comps.length > 0 && comps[comps.length - 1] === '..'))
      comps.push(c);
    else if (comps.length > 0) comps.pop();
  }
  const s = '/'.repeat(initial) + comps.join('/');
  return s === '' ? '.' : s;
}

export function pyDirname(p: string): string {
  const i = p.lastIndexOf('/') + 1;
  let head = p.slice(0, i);
  if (head !== '' && head !== '/'.repeat(head.length)) head = head.replace(/\/+$/, '');
  return head;
}

export function pyBasename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** os.path.abspath for paths that are already absolute (the simulator never uses a cwd). */
export function pyAbspath(p: string): string {
  return pyNormpath(p.startsWith('/') ? p : pyJoin('/', p));
}

export function pyCommonpath(a: string, b: string): string {
  const split = (p: string): string[] => p.split('/').filter((c) => c !== '' && c !== '.');
  const pa = split(a);
  const pb = split(b);
  let k = 0;
  while (k < pa.length && k < pb.length && pa[k] === pb[k]) k++;
  return '/' + pa.slice(0, k).join('/');
}

export function pySplitext(name: string): [string, string] {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0 || /^\.+$/.test(base.slice(0, dot + 1))) return [name, ''];
  const cut = name.length - (base.length - dot);
  return [name.slice(0, cut), name.slice(cut)];
}

/** folder_paths.annotated_filepath: "x.png [output]" names a file in another folder. */
export function annotatedFilepath(name: string): { name: string; folder: FolderType | null } {
  if (name.endsWith('[output]')) return { name: name.slice(0, -9), folder: 'output' };
  if (name.endsWith('[input]')) return { name: name.slice(0, -8), folder: 'input' };
  if (name.endsWith('[temp]')) return { name: name.slice(0, -7), folder: 'temp' };
  return { name, folder: null };
}

export function folderType(t: string | null | undefined): FolderType | null {
  return t === 'output' || t === 'input' || t === 'temp' ? t : null;
}

/** Maps a path under the display root (as ComfyUI computed it) to the real file. */
export class DataDirs {
  constructor(readonly dataDir: string) {}
  display(folder: FolderType): string {
    return `${DISPLAY_ROOT}/${folder}`;
  }
  real(displayPath: string): string {
    return nodeJoin(this.dataDir, displayPath.slice(DISPLAY_ROOT.length));
  }
}

function tracebackFrame(file: string, line: number, fn: string): string {
  return `  File "${DISPLAY_ROOT}/${file}", line ${line}, in ${fn}\n    <source line omitted from recording>\n`;
}
export { tracebackFrame };

export interface SavePath {
  /** Real folder to write into. */
  folder: string;
  filename: string;
  counter: number;
  subfolder: string;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** folder_paths.get_save_image_path (PreviewImage passes the temp folder as its output_dir).
 *  Throws the recorded "outside the output folder" exception. */
export function getSaveImagePath(
  dirs: DataDirs,
  base: FolderType,
  prefixIn: string,
  width: number,
  height: number,
  now = new Date(),
): SavePath {
  let prefix = prefixIn;
  if (prefix.includes('%')) {
    prefix = prefix
      .replaceAll('%width%', String(width))
      .replaceAll('%height%', String(height))
      .replaceAll('%year%', String(now.getFullYear()))
      .replaceAll('%month%', pad2(now.getMonth() + 1))
      .replaceAll('%day%', pad2(now.getDate()))
      .replaceAll('%hour%', pad2(now.getHours()))
      .replaceAll('%minute%', pad2(now.getMinutes()))
      .replaceAll('%second%', pad2(now.getSeconds()));
  }
  const outputDir = dirs.display(base);
  const subfolder = pyDirname(pyNormpath(prefix));
  const filename = pyBasename(pyNormpath(prefix));
  const fullOutputFolder = pyJoin(outputDir, subfolder);
  const abs = pyAbspath(fullOutputFolder);
  const common = pyCommonpath(outputDir, abs);
  if (common !== outputDir) {
    const err =
      '**** ERROR: Saving image outside the output folder is not allowed.' +
      `\n full_output_folder: ${abs}` +
      `\n         output_dir: ${outputDir}` +
      `\n         commonpath: ${common}`;
    throw new PyException('Exception', err, [tracebackFrame('folder_paths.py', 397, 'get_save_image_path')]);
  }
  const folder = dirs.real(abs);
  const prefixLen = pyBasename(prefix).length;
  let counter = 1;
  try {
    let best = -1;
    for (const f of readdirSync(folder)) {
      if (f.slice(0, prefixLen) !== filename || f[prefixLen] !== '_') continue;
      let digits = 0;
      try {
        digits = Number(pyInt(f.slice(prefixLen + 1).split('_')[0] ?? ''));
      } catch {
        digits = 0;
      }
      best = Math.max(best, digits);
    }
    if (best >= 0) counter = best + 1;
  } catch {
    counter = 1; // folder missing: ComfyUI creates it
  }
  return { folder, filename, counter, subfolder };
}

const MIME: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.svg': 'image/svg+xml',
  '.ico': 'image/vnd.microsoft.icon',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mov': 'video/quicktime',
  '.mkv': 'video/x-matroska',
  '.avi': 'video/x-msvideo',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/x-wav',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.opus': 'audio/ogg',
  '.m4a': 'audio/mp4',
  '.json': 'application/json',
  '.txt': 'text/plain',
  '.html': 'text/html',
  '.htm': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.glb': 'model/gltf-binary',
  '.gltf': 'model/gltf+json',
};

/** mimetypes.guess_type(name)[0], or null. */
export function guessMime(name: string): string | null {
  return MIME[pySplitext(name)[1].toLowerCase()] ?? null;
}

/** LoadImage's combo list: image files directly in input/, sorted by code point. */
export function listInputImages(inputDir: string): string[] {
  try {
    return readdirSync(inputDir)
      .filter((f) => {
        try {
          return statSync(nodeJoin(inputDir, f)).isFile() && (guessMime(f) ?? '').startsWith('image/');
        } catch {
          return false;
        }
      })
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } catch {
    return [];
  }
}
