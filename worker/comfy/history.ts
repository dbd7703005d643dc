// Reads a finished prompt's history entry: how it ended, and which outputs it produced.
import { WorkerError } from '../errors';
import { isObject } from '../util/objects';
import type { HistoryEntry, OutputFileRef, OutputValue } from './types';

export type PromptOutcome =
  { kind: 'success' } | { kind: 'interrupted'; nodeId: string | undefined } | { kind: 'error'; error: WorkerError };

/**
 * success / execution error / interrupt. An interrupt has status_str "error" like a failure; only
 * the last status message tells them apart.
 */
export function classifyOutcome(entry: HistoryEntry): PromptOutcome {
  const status = entry.status;
  const messages = Array.isArray(status?.messages) ? status.messages : [];
  const last = messages[messages.length - 1];
  const [lastType, lastData] = Array.isArray(last) ? last : [undefined, undefined];
  const data = isObject(lastData) ? lastData : {};
  if (lastType === 'execution_interrupted') {
    return { kind: 'interrupted', nodeId: typeof data.node_id === 'string' ? data.node_id : undefined };
  }
  if (lastType === 'execution_error') return { kind: 'error', error: executionError(data) };
  if (status?.status_str === 'success' || ((status === null || status === undefined) && isObject(entry.outputs)))
    return { kind: 'success' };
  return {
    kind: 'error',
    error: new WorkerError(
      500,
      'execution_error',
      `ComfyUI reported status "${status?.status_str ?? 'none'}" without an error message`,
    ),
  };
}

function executionError(data: Record<string, unknown>): WorkerError {
  const pick = (key: string) => (typeof data[key] === 'string' ? (data[key] as string) : undefined);
  const nodeId = pick('node_id');
  const nodeType = pick('node_type');
  const exceptionType = pick('exception_type');
  const exceptionMessage = (pick('exception_message') ?? '').trim();
  const where = `Node ${nodeId ?? '?'} (${nodeType ?? 'unknown type'})`;
  const message = `Execution error: ${where} raised ${exceptionType ?? 'an exception'}: ${exceptionMessage}`;
  // current_inputs is left out: it holds tensor dumps, not something a client can use.
  const details = {
    node_id: nodeId,
    node_type: nodeType,
    exception_type: exceptionType,
    exception_message: exceptionMessage,
    executed: Array.isArray(data.executed) ? data.executed : [],
    traceback: Array.isArray(data.traceback) ? data.traceback : [],
  };
  return new WorkerError(500, 'execution_error', message, { details });
}

/** Folder types that hold results; `temp` (previews) only when asked for, `input` never. */
function wanted(type: string, includeTemp: boolean): boolean {
  if (type === 'temp') return includeTemp;
  return type !== 'input';
}

/**
 * Every file and value of every output node: `images` (also animations and videos), `gifs`,
 * `audio`, `text`, and keys nobody has told us about. Non-lists and items without a filename are
 * not files; lists of strings (PreviewAny's `text`) are values.
 */
/** One output file's identity: the same name in another folder or subfolder is another file. */
export function outputKey(ref: { filename: string; subfolder: string; type: string }): string {
  return `${ref.type}\u0000${ref.subfolder}\u0000${ref.filename}`;
}

export function collectOutputs(entry: HistoryEntry, includeTemp: boolean): { files: OutputFileRef[]; values: OutputValue[] } {
  const files: OutputFileRef[] = [];
  const values: OutputValue[] = [];
  const seen = new Set<string>();
  for (const [nodeId, output] of Object.entries(entry.outputs ?? {})) {
    if (!isObject(output)) continue;
    for (const [kind, items] of Object.entries(output)) {
      if (!Array.isArray(items)) continue;
      for (const item of items) {
        if (typeof item === 'string') {
          values.push({ nodeId, kind, value: item });
          continue;
        }
        if (!isObject(item) || typeof item.filename !== 'string') continue;
        const type = typeof item.type === 'string' ? item.type : 'output';
        const subfolder = typeof item.subfolder === 'string' ? item.subfolder : '';
        const key = outputKey({ type, subfolder, filename: item.filename });
        if (!wanted(type, includeTemp) || seen.has(key)) continue;
        seen.add(key);
        files.push({ nodeId, kind, filename: item.filename, subfolder, type });
      }
    }
  }
  return { files, values };
}

/**
 * A history entry safe to hand to a client: ComfyUI v0.3.64–0.3.65 echo the prompt's extra_data
 * as sent, including the Comfy.org API key (newer servers strip it themselves).
 */
export function withoutSecrets(entry: HistoryEntry): HistoryEntry {
  if (!Array.isArray(entry.prompt)) return entry;
  const prompt = [...entry.prompt];
  const extra = prompt[3];
  if (isObject(extra)) {
    const { api_key_comfy_org: _key, auth_token_comfy_org: _token, ...rest } = extra;
    prompt[3] = rest;
  }
  return { ...entry, prompt };
}
