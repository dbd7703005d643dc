// Writes a completed job's output files into --out with the names ComfyUI gave them (its
// subfolder kept), from either answer shape: the API wrapper's Result (`output`) or
// worker-comfyui's output object (`images`, `text`).
import fs from 'node:fs';
import path from 'node:path';
import type { WrapperOutput } from '../worker/contracts/wrapper/result';
import { CliError, EXIT } from './exit-codes';

export interface OutputItem {
  nodeId?: string | undefined;
  filename?: string | undefined;
  subfolder: string;
  /** base64 */
  data?: string | undefined;
  url?: string | undefined;
  /** Why the worker could not deliver the file. */
  error?: string | undefined;
  /** A value that is not a file (a text output). */
  text?: string | undefined;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function outputItems(result: unknown): OutputItem[] {
  if (typeof result !== 'object' || result === null) return [];
  const r = result as { output?: unknown; images?: unknown; text?: unknown };
  if (Array.isArray(r.output)) {
    return (r.output as WrapperOutput[]).map((o) => ({
      nodeId: o.node_id,
      filename: o.filename,
      subfolder: o.subfolder ?? '',
      data: o.data,
      url: o.url,
      error: o.upload_error ?? o.error,
      text:
        o.filename === undefined && o.value !== undefined
          ? typeof o.value === 'string'
            ? o.value
            : JSON.stringify(o.value)
          : undefined,
    }));
  }
  const items: OutputItem[] = [];
  for (const raw of Array.isArray(r.images) ? (r.images as Array<Record<string, unknown>>) : []) {
    const s3 = raw.type === 's3_url';
    items.push({
      nodeId: str(raw.node_id),
      filename: str(raw.filename),
      subfolder: str(raw.subfolder) ?? '',
      data: s3 ? undefined : str(raw.data),
      url: s3 ? str(raw.data) : undefined,
      error: str(raw.error),
    });
  }
  for (const raw of Array.isArray(r.text) ? (r.text as Array<Record<string, unknown>>) : []) {
    items.push({ nodeId: str(raw.node_id), subfolder: '', text: str(raw.data) ?? JSON.stringify(raw.data) });
  }
  return items;
}

/** out/subfolder/filename, refused if the worker's names would lead outside `out`. */
function target(out: string, item: OutputItem): string {
  const root = path.resolve(out);
  const file = path.resolve(root, item.subfolder, item.filename!);
  if (!file.startsWith(root + path.sep)) {
    throw new CliError(
      EXIT.jobFailed,
      `refusing to write output ${JSON.stringify(path.join(item.subfolder, item.filename!))} outside ${out}`,
    );
  }
  return file;
}

export interface Written {
  files: string[];
  texts: Array<{ nodeId?: string | undefined; text: string }>;
  /** Outputs the worker could not deliver, with its reason. */
  missing: string[];
}

export async function writeOutputs(result: unknown, out: string, download: (url: string) => Promise<Buffer>): Promise<Written> {
  const written: Written = { files: [], texts: [], missing: [] };
  for (const item of outputItems(result)) {
    if (item.filename === undefined) {
      if (item.text !== undefined) written.texts.push({ nodeId: item.nodeId, text: item.text });
      continue;
    }
    const name = path.join(item.subfolder, item.filename);
    let bytes: Buffer;
    if (item.data !== undefined) bytes = Buffer.from(item.data, 'base64');
    else if (item.url !== undefined) bytes = await download(item.url);
    else {
      written.missing.push(`${name}: ${item.error ?? 'the worker sent neither its data nor a URL'}`);
      continue;
    }
    const file = target(out, item);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, bytes);
    } catch (err) {
      throw new CliError(EXIT.internal, `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    written.files.push(file);
  }
  return written;
}
