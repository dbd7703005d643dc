// Query-string parameters of the HTTP door, checked with a 400 that names the parameter.
import { invalidField } from '../../errors';
import { parseBoolWord } from '../../util/words';

function single(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidField(name, 'must be given once, as a plain value');
  return value.trim() === '' ? undefined : value.trim();
}

/** A number >= `min`, or the fallback when absent. */
export function queryNumber(value: unknown, name: string, fallback: number, min = 0): number {
  const raw = single(value, name);
  if (raw === undefined) return fallback;
  const parsed = Number(raw);
  if (!Number.isFinite(parsed) || parsed < min) throw invalidField(name, `must be a number >= ${min}, got "${raw}"`);
  return parsed;
}

/** true/false, 1/0, yes/no, on/off, t/f, y/n (any case), or the fallback when absent. */
export function queryBool(value: unknown, name: string, fallback: boolean): boolean {
  const raw = single(value, name);
  if (raw === undefined) return fallback;
  const parsed = parseBoolWord(raw);
  if (parsed === undefined) throw invalidField(name, `must be true or false, got "${raw}"`);
  return parsed;
}
