// Builds the body of POST /run from the command line: a workflow file (API format) or a modifier
// with --set values, and --image inputs. The API-wrapper form ({"input": {...}}) is used for both,
// so every job is answered in one shape (the Result's `output` list).
import fs from 'node:fs';
import path from 'node:path';
import { CliError, EXIT } from './exit-codes';

export interface SubmitInput {
  workflowFile?: string | undefined;
  modifier?: string | undefined;
  /** `key=value` pairs for the modifier. */
  sets: string[];
  /** `name=path|url`, or a bare path (named after the file). */
  images: string[];
}

export interface RunBody {
  input: {
    workflow_json?: Record<string, unknown>;
    modifier?: string;
    modifications?: Record<string, unknown>;
    images?: Array<{ name: string; image: string }>;
  };
}

function invalid(message: string): CliError {
  return new CliError(EXIT.invalidInput, message);
}

function readWorkflow(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(`cannot read the workflow ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid(`the workflow ${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid(`the workflow ${file} must be a JSON object (ComfyUI's "Save (API Format)")`);
  }
  return parsed as Record<string, unknown>;
}

/** `steps=20` → 20, `prompt=a cat` → "a cat": JSON when the value parses as JSON, else text. */
export function parseSet(pair: string): [string, unknown] {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw invalid(`--set ${pair}: expected key=value`);
  const key = pair.slice(0, eq).trim();
  const raw = pair.slice(eq + 1);
  try {
    return [key, JSON.parse(raw)];
  } catch {
    return [key, raw];
  }
}

const isUrl = (value: string) => /^https?:\/\//i.test(value);

/** `name=path|url` or `path`: a local file is sent as base64, a URL as is (the worker fetches it). */
export function parseImage(spec: string): { name: string; image: string } {
  let name: string;
  let source: string;
  const eq = spec.indexOf('=');
  // A bare URL has '=' only in its query: it is not "name=value".
  if (eq > 0 && !isUrl(spec)) {
    name = spec.slice(0, eq);
    source = spec.slice(eq + 1);
  } else {
    source = spec;
    name = isUrl(spec) ? path.basename(new URL(spec).pathname) : path.basename(spec);
  }
  if (name === '' || source === '') throw invalid(`--image ${spec}: expected name=path or name=url`);
  if (isUrl(source)) return { name, image: source };
  try {
    return { name, image: fs.readFileSync(source).toString('base64') };
  } catch (err) {
    throw invalid(`--image ${spec}: cannot read ${source}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export function buildRunBody(input: SubmitInput): RunBody {
  if (input.workflowFile !== undefined && input.modifier !== undefined) {
    throw invalid('give a workflow file or --modifier, not both');
  }
  if (input.workflowFile === undefined && input.modifier === undefined) {
    throw invalid('give a workflow file (API format) or --modifier NAME');
  }
  if (input.sets.length > 0 && input.modifier === undefined) throw invalid('--set needs --modifier');
  const body: RunBody = { input: {} };
  if (input.workflowFile !== undefined) {
    body.input.workflow_json = readWorkflow(input.workflowFile);
  } else {
    body.input.modifier = input.modifier!;
    body.input.modifications = Object.fromEntries(input.sets.map(parseSet));
  }
  if (input.images.length > 0) body.input.images = input.images.map(parseImage);
  return body;
}
