// The modifier registry: every `<name>.ts` in the top-level modifiers/ folder whose default export
// is a modifier (see modifiers/define.ts). Loaded once at startup; a name is matched
// case-insensitively.
import fs from 'node:fs';
import path from 'node:path';
import type { Modifier } from '../../../modifiers/define';
import type { Workflow } from '../../comfy/types';
import { invalidField } from '../../errors';

/** modifiers/ at the top of the project (the same relative place in the build). */
const MODIFIERS_DIR = path.join(__dirname, '../../../modifiers');

const NOT_MODIFIERS = new Set(['index', 'define']);
export const RANDOM_INT = '__RANDOM_INT__';

export class ModifierRegistry {
  private readonly byName: Map<string, Modifier>;

  constructor(modifiers: Modifier[]) {
    this.byName = new Map(modifiers.map((m) => [m.name.toLowerCase(), m]));
  }

  /** Loads every modifier module in `dir` (modifiers/ by default). */
  static load(dir: string = MODIFIERS_DIR): ModifierRegistry {
    const modules = fs
      .readdirSync(dir)
      .filter((file) => /\.(js|ts)$/.test(file) && !/\.(d|test)\.ts$/.test(file))
      .filter((file) => !NOT_MODIFIERS.has(path.basename(file).replace(/\.(js|ts)$/, '')));
    const modifiers = modules.map((file) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const loaded = require(path.join(dir, file)) as { default?: Modifier };
      if (!loaded.default?.template || !loaded.default.fields)
        throw new Error(`modifiers/${file} has no default modifier export`);
      return loaded.default;
    });
    return new ModifierRegistry(modifiers);
  }

  names(): string[] {
    return [...this.byName.values()].map((m) => m.name).sort();
  }

  has(name: string): boolean {
    return this.byName.has(name.toLowerCase());
  }

  /** The request key a modifier writes into node `node`'s input `input`, if any (for error fields). */
  keyFor(name: string, node: string, input: string): string | undefined {
    const fields = this.byName.get(name.toLowerCase())?.fields ?? {};
    return Object.keys(fields).find((key) => fields[key]?.node === node && fields[key]?.input === input);
  }

  /**
   * The modifier's template with the modifications written in (defaults for absent keys).
   * Keys the modifier does not map are ignored, as the api-wrapper does.
   */
  apply(name: string, modifications: Record<string, unknown>, field = 'input.modifications'): Workflow {
    const modifier = this.byName.get(name.toLowerCase());
    if (!modifier) throw invalidField('input.modifier', `Unknown modifier: ${name} (known: ${this.names().join(', ')})`);
    const workflow = structuredClone(modifier.template);
    for (const [key, target] of Object.entries(modifier.fields)) {
      let value = key in modifications ? modifications[key] : target.default;
      if (typeof value === 'function') value = (value as () => unknown)();
      if (value !== RANDOM_INT) {
        const parsed = target.schema.safeParse(value);
        if (!parsed.success) throw invalidField(`${field}.${key}`, parsed.error.issues[0]?.message ?? 'invalid value');
        value = parsed.data;
      }
      const node = workflow[target.node];
      if (node) node.inputs[target.input] = value;
    }
    return workflow;
  }
}
