// Turns ComfyUI's 400 body from POST /prompt into one readable message. The body itself travels
// unchanged in the error's details, so clients keep every node id and error type.
import { isObject } from '../util/objects';

const MAX_LISTED_CHOICES = 20;

export function describeValidationError(body: Record<string, unknown>): string {
  const error = isObject(body.error) ? body.error : {};
  const head = [str(error.message), str(error.details)].filter((s) => s !== '');
  const lines = [`ComfyUI rejected the workflow: ${head.join(': ') || 'invalid prompt'}`];
  const nodeErrors = isObject(body.node_errors) ? body.node_errors : {};
  for (const [nodeId, entry] of Object.entries(nodeErrors)) {
    if (!isObject(entry)) continue;
    const classType = str(entry.class_type);
    const errors = Array.isArray(entry.errors) ? entry.errors : [];
    for (const item of errors) {
      if (!isObject(item)) continue;
      const text = [str(item.message), str(item.details)].filter((s) => s !== '').join(': ');
      lines.push(`• Node ${nodeId} (${classType}): ${text}${choicesHint(item)}`);
    }
  }
  return lines.join('\n');
}

/**
 * A value_not_in_list on a model input is how ComfyUI reports a missing model file; the list of
 * what is installed is in input_config, so say it (worker-comfyui's users asked for exactly this).
 */
function choicesHint(item: Record<string, unknown>): string {
  if (item.type !== 'value_not_in_list' || !isObject(item.extra_info)) return '';
  const inputName = str(item.extra_info.input_name);
  const config = item.extra_info.input_config;
  if (!inputName.endsWith('_name') || !Array.isArray(config)) return '';
  const choices = comboChoices(config);
  if (choices === undefined) return '';
  if (choices.length === 0) return ` (no ${inputName} values are available: is the model installed?)`;
  const shown = choices.slice(0, MAX_LISTED_CHOICES).join(', ');
  const more = choices.length > MAX_LISTED_CHOICES ? `, … ${choices.length - MAX_LISTED_CHOICES} more` : '';
  return ` (available: ${shown}${more})`;
}

/** Both combo forms: `[[a, b], {...}]` and `["COMBO", {options: [a, b]}]`. */
function comboChoices(config: unknown[]): string[] | undefined {
  const [first, second] = config;
  if (Array.isArray(first)) return first.map(String);
  if (first === 'COMBO' && isObject(second) && Array.isArray(second.options)) return second.options.map(String);
  return undefined;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
}
