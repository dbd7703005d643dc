// The yes/no words every setting, header and query parameter accepts, in any case.
const TRUE_WORDS = new Set(['1', 'true', 't', 'yes', 'y', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'f', 'no', 'n', 'off']);

/** true, false, or undefined for anything else. */
export function parseBoolWord(word: string): boolean | undefined {
  const normal = word.trim().toLowerCase();
  if (TRUE_WORDS.has(normal)) return true;
  if (FALSE_WORDS.has(normal)) return false;
  return undefined;
}
