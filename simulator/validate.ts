// POST /prompt validation, step for step as ComfyUI's validate_prompt/validate_inputs: the same
// checks in the same order, the same error dicts, the same quirks (values are converted in place
// so history shows the converted prompt; an error upstream leaves the output's own reasons empty,
// so the top-level details are ""; Python exceptions become exception_during_validation with
// their traceback frames). Anything ComfyUI would crash on is thrown as a PyException (HTTP 500).

import { tracebackFrame } from './files';
import type { NodeClass, NodeEnv } from './nodes';
import {
  PyException,
  isPyDict,
  pyBool,
  pyEquals,
  pyFloat,
  pyInt,
  pyLess,
  pyNumber,
  pyRepr,
  pySetOrder,
  pyStr,
  pyTypeName,
  type PyDict,
  type PyValue,
} from './pyvalues';
import { comboOptions, type InputSpec, type InputType, type ObjectInfoEntry } from './schemas';

type Reason = Map<string, unknown>;
type Validated = { ok: boolean; reasons: Reason[] };

export type ValidationResult =
  { ok: true; outputs: string[]; nodeErrors: PyDict } | { ok: false; error: Reason; outputs: string[]; nodeErrors: PyDict };

const frame = (line: number, fn = 'validate_inputs'): string => tracebackFrame('execution.py', line, fn);
/** Lines of execution.py v0.3.65 that raise or recurse inside validate_inputs. */
const LINE = { inputs: 736, classLookup: 794, returnType: 796, recurse: 814, validateFn: 885, validatePrompt: 1016 };

function reason(type: string, message: string, details: string, extra: Array<[string, unknown]>): Reason {
  return new Map<string, unknown>([
    ['type', type],
    ['message', message],
    ['details', details],
    ['extra_info', new Map(extra)],
  ]);
}

function promptError(type: string, message: string, details: string): Reason {
  return reason(type, message, details, []);
}

/** Python's `x in container` for the containers a request can hold. */
function pyIn(x: unknown, container: unknown): boolean {
  if (isPyDict(container)) return typeof x === 'string' && container.has(x);
  if (Array.isArray(container)) return container.some((c) => pyEquals(c, x));
  if (typeof container === 'string') return typeof x === 'string' && container.includes(x);
  throw new PyException('TypeError', `argument of type '${pyTypeName(container)}' is not iterable`);
}

/** comfy_execution.validation.validate_node_input. */
export function validateNodeInput(received: InputType, input: InputType): boolean {
  if (pyEquals(received, input)) return true;
  if (Array.isArray(received) && input === 'COMBO') return true;
  if (typeof received !== 'string' || typeof input !== 'string') return false;
  const r = new Set(received.split(',').map((t) => t.trim()));
  const i = new Set(input.split(',').map((t) => t.trim()));
  if (r.has('*') || i.has('*')) return true;
  return [...r].some((t) => i.has(t));
}

function inputInfo(
  schema: ObjectInfoEntry,
  name: string,
): {
  type: InputType;
  category: 'required' | 'optional' | 'hidden';
  extra: Record<string, unknown>;
  spec: InputSpec | null;
} | null {
  for (const category of ['required', 'optional'] as const) {
    const spec = schema.input[category]?.[name];
    if (spec) return { type: spec[0], category, extra: spec[1] ?? {}, spec };
  }
  const hidden = schema.input.hidden?.[name];
  if (hidden !== undefined) return { type: hidden, category: 'hidden', extra: {}, spec: null };
  return null;
}

/** execution.is_link: a 2-list of a node id string and a number. */
export function isLink(v: unknown): v is [string, number] {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && pyNumber(v[1]) !== null && typeof v[1] !== 'boolean';
}

class Validator {
  private readonly validated = new Map<string, Validated>();
  private readonly active = new Set<string>();

  constructor(
    private readonly prompt: PyDict,
    private readonly classes: ReadonlyMap<string, NodeClass>,
    private readonly env: NodeEnv,
  ) {}

  get results(): ReadonlyMap<string, Validated> {
    return this.validated;
  }

  setFailed(id: string, reasons: Reason[]): void {
    this.validated.set(id, { ok: false, reasons });
  }

  private node(id: string): PyDict {
    const n = this.prompt.get(id);
    if (!isPyDict(n)) throw new PyException('TypeError', `'${pyTypeName(n)}' object is not subscriptable`, [frame(LINE.inputs)]);
    return n;
  }

  private classOf(id: string): NodeClass {
    return this.classes.get(String(this.node(id).get('class_type'))) as NodeClass;
  }

  validate(id: string): Validated {
    const done = this.validated.get(id);
    if (done) return done;
    if (this.active.has(id)) throw new PyException('RecursionError', 'maximum recursion depth exceeded', [frame(LINE.recurse)]);
    this.active.add(id);
    try {
      return this.check(id);
    } finally {
      this.active.delete(id);
    }
  }

  private check(id: string): Validated {
    const node = this.node(id);
    const inputs = node.get('inputs');
    if (!node.has('inputs')) throw new PyException('KeyError', "'inputs'", [frame(LINE.inputs)]);
    if (!isPyDict(inputs))
      throw new PyException('TypeError', `argument of type '${pyTypeName(inputs)}' is not iterable`, [frame(LINE.inputs + 27)]);
    const cls = this.classOf(id);
    const schema = cls.schema(this.env);
    const validateArgs = cls.validateInputs?.args ?? [];
    const errors: Reason[] = [];
    let valid = true;
    const receivedTypes = new Map<string, unknown>();
    // ComfyUI iterates a set of input names (random order per process); schema order is one of them.
    const names = [...Object.keys(schema.input.required ?? {}), ...Object.keys(schema.input.optional ?? {})];
    for (const x of names) {
      const info = inputInfo(schema, x);
      if (!info) continue;
      if (!inputs.has(x)) {
        if (info.category === 'required')
          errors.push(reason('required_input_missing', 'Required input is missing', x, [['input_name', x]]));
        continue;
      }
      let val = inputs.get(x) as PyValue;
      const config = [info.type, info.extra];
      if (Array.isArray(val)) {
        if (val.length !== 2) {
          errors.push(
            reason('bad_linked_input', 'Bad linked input, must be a length-2 list of [node_id, slot_index]', x, [
              ['input_name', x],
              ['input_config', config],
              ['received_value', val],
            ]),
          );
          continue;
        }
        const [oid, slot] = val as [PyValue, PyValue];
        if (Array.isArray(oid) || isPyDict(oid))
          throw new PyException('TypeError', `unhashable type: '${pyTypeName(oid)}'`, [frame(LINE.classLookup)]);
        if (typeof oid !== 'string' || !this.prompt.has(oid))
          throw new PyException('KeyError', pyRepr(oid), [frame(LINE.classLookup)]);
        const returnTypes = this.classOf(oid).schema(this.env).output;
        if (typeof slot === 'boolean' || (typeof slot !== 'bigint' && (typeof slot !== 'number' || !Number.isInteger(slot)))) {
          throw new PyException('TypeError', `tuple indices must be integers or slices, not ${pyTypeName(slot)}`, [
            frame(LINE.returnType),
          ]);
        }
        const index = Number(slot);
        const receivedType = index < 0 ? returnTypes[returnTypes.length + index] : returnTypes[index];
        if (receivedType === undefined) throw new PyException('IndexError', 'tuple index out of range', [frame(LINE.returnType)]);
        receivedTypes.set(x, receivedType);
        if (!validateArgs.includes('input_types') && !validateNodeInput(receivedType, info.type)) {
          errors.push(
            reason(
              'return_type_mismatch',
              'Return type mismatch between linked nodes',
              `${x}, received_type(${receivedType}) mismatch input_type(${pyStr(info.type)})`,
              [
                ['input_name', x],
                ['input_config', config],
                ['received_type', receivedType],
                ['linked_node', val],
              ],
            ),
          );
          continue;
        }
        try {
          if (!this.validate(oid).ok) valid = false;
        } catch (e) {
          if (!(e instanceof PyException)) throw e;
          valid = false;
          this.setFailed(oid, [
            reason('exception_during_inner_validation', 'Exception when validating inner node', e.pyMessage, [
              ['input_name', x],
              ['input_config', config],
              ['exception_message', e.pyMessage],
              ['exception_type', e.excType],
              ['traceback', [frame(LINE.recurse), ...e.frames]],
              ['linked_node', val],
            ]),
          ]);
        }
        continue;
      }
      try {
        if (isPyDict(val) && val.has('__value__')) {
          val = val.get('__value__') as PyValue;
          inputs.set(x, val);
        }
        if (info.type === 'INT') val = pyInt(val);
        else if (info.type === 'FLOAT') val = pyFloat(val);
        else if (info.type === 'STRING') val = pyStr(val);
        else if (info.type === 'BOOLEAN') val = pyBool(val);
        inputs.set(x, val);
      } catch (e) {
        if (!(e instanceof PyException)) throw e;
        errors.push(
          reason(
            'invalid_input_type',
            `Failed to convert an input value to a ${pyStr(info.type)} value`,
            `${x}, ${pyStr(val)}, ${e.pyMessage}`,
            [
              ['input_name', x],
              ['input_config', config],
              ['received_value', val],
              ['exception_message', e.pyMessage],
            ],
          ),
        );
        continue;
      }
      if (validateArgs.includes(x)) continue;
      const bound = (key: 'min' | 'max'): boolean => {
        if (!(key in info.extra)) return false;
        const limit = info.extra[key];
        if (pyNumber(val) === null || pyNumber(limit) === null) {
          throw new PyException(
            'TypeError',
            `'${key === 'min' ? '<' : '>'}' not supported between instances of '${pyTypeName(val)}' and '${pyTypeName(limit)}'`,
            [frame(LINE.recurse + 46)],
          );
        }
        return key === 'min' ? pyLess(val, limit) : pyLess(limit, val);
      };
      if (bound('min')) {
        errors.push(
          reason('value_smaller_than_min', `Value ${pyStr(val)} smaller than min of ${pyStr(info.extra['min'])}`, x, [
            ['input_name', x],
            ['input_config', config],
            ['received_value', val],
          ]),
        );
        continue;
      }
      if (bound('max')) {
        errors.push(
          reason('value_bigger_than_max', `Value ${pyStr(val)} bigger than max of ${pyStr(info.extra['max'])}`, x, [
            ['input_name', x],
            ['input_config', config],
            ['received_value', val],
          ]),
        );
        continue;
      }
      const options = info.spec ? comboOptions(info.spec) : null;
      if (options && !options.some((o) => pyEquals(o, val))) {
        const big = options.length > 20;
        errors.push(
          reason(
            'value_not_in_list',
            'Value not in list',
            `${x}: '${pyStr(val)}' not in ${big ? `(list of length ${options.length})` : pyRepr(options)}`,
            [
              ['input_name', x],
              ['input_config', big ? null : config],
              ['received_value', val],
            ],
          ),
        );
      }
    }
    if (cls.validateInputs) errors.push(...this.customValidation(cls, schema, inputs, receivedTypes));
    const result: Validated = errors.length > 0 || !valid ? { ok: false, reasons: errors } : { ok: true, reasons: [] };
    this.validated.set(id, result);
    return result;
  }

  /** VALIDATE_INPUTS with the arguments it names (constants; links are None here). */
  private customValidation(
    cls: NodeClass,
    schema: ObjectInfoEntry,
    inputs: PyDict,
    receivedTypes: Map<string, unknown>,
  ): Reason[] {
    const fn = cls.validateInputs;
    if (!fn) return [];
    const filtered = new Map<string, unknown>();
    for (const [x, v] of inputs) {
      if (!fn.args.includes(x)) continue;
      const info = inputInfo(schema, x);
      if (isLink(v)) filtered.set(x, null);
      else if (info) filtered.set(x, v);
    }
    if (fn.args.includes('input_types')) filtered.set('input_types', receivedTypes);
    let ret: true | false | string;
    try {
      ret = fn.check(filtered, this.env);
    } catch (e) {
      if (e instanceof PyException) throw new PyException(e.excType, e.pyMessage, [frame(LINE.validateFn), ...e.frames]);
      throw e;
    }
    const out: Reason[] = [];
    for (const x of filtered.keys()) {
      if (ret === true) continue;
      const details = ret === false ? x : `${x} - ${ret}`;
      out.push(reason('custom_validation_failed', 'Custom validation failed for node', details, [['input_name', x]]));
    }
    return out;
  }
}

/** execution.validate_prompt. `partial` is partial_execution_targets (undefined when absent). */
export function validatePrompt(
  prompt: unknown,
  partial: unknown,
  classes: ReadonlyMap<string, NodeClass>,
  env: NodeEnv,
): ValidationResult {
  const noOutputs = (): ValidationResult => ({
    ok: false,
    error: promptError('prompt_no_outputs', 'Prompt has no outputs', ''),
    outputs: [],
    nodeErrors: new Map(),
  });
  if (!isPyDict(prompt)) {
    if ((typeof prompt === 'string' || Array.isArray(prompt)) && prompt.length === 0) return noOutputs();
    throw new PyException('TypeError', `'${pyTypeName(prompt)}' object is not subscriptable`);
  }
  const outputs: string[] = [];
  for (const [x, node] of prompt) {
    if (!pyIn('class_type', node)) {
      return {
        ok: false,
        error: promptError(
          'invalid_prompt',
          'Cannot execute because a node is missing the class_type property.',
          `Node ID '#${x}'`,
        ),
        outputs: [],
        nodeErrors: new Map(),
      };
    }
    if (!isPyDict(node)) throw new PyException('TypeError', 'string indices must be integers');
    const ct = node.get('class_type');
    if (Array.isArray(ct) || isPyDict(ct)) throw new PyException('TypeError', `unhashable type: '${pyTypeName(ct)}'`);
    const cls = typeof ct === 'string' ? classes.get(ct) : undefined;
    if (!cls) {
      return {
        ok: false,
        error: promptError('invalid_prompt', `Cannot execute because node ${pyStr(ct)} does not exist.`, `Node ID '#${x}'`),
        outputs: [],
        nodeErrors: new Map(),
      };
    }
    if (cls.schema(env).output_node === true && (partial === undefined || partial === null || pyIn(x, partial))) outputs.push(x);
  }
  if (outputs.length === 0) return noOutputs();

  const v = new Validator(prompt, classes, env);
  const good: string[] = [];
  const failed: Array<[string, Reason[]]> = [];
  const nodeErrors: PyDict = new Map();
  for (const o of pySetOrder(outputs)) {
    let ok = false;
    let reasons: Reason[] = [];
    try {
      const r = v.validate(o);
      ok = r.ok;
      reasons = r.reasons;
    } catch (e) {
      if (!(e instanceof PyException)) throw e;
      reasons = [
        reason('exception_during_validation', 'Exception when validating node', e.pyMessage, [
          ['exception_type', e.excType],
          ['traceback', [frame(LINE.validatePrompt, 'validate_prompt'), ...e.frames]],
        ]),
      ];
      v.setFailed(o, reasons);
    }
    if (ok) {
      good.push(o);
      continue;
    }
    failed.push([o, reasons]);
    // Every failed node validated so far gets this output as a dependent (ComfyUI walks the whole
    // shared `validated` dict here, not just this output's ancestors).
    for (const [nodeId, result] of v.results) {
      if (result.ok || result.reasons.length === 0) continue;
      let entry = nodeErrors.get(nodeId) as PyDict | undefined;
      if (!entry) {
        const n = prompt.get(nodeId);
        entry = new Map<string, PyValue>([
          ['errors', result.reasons as unknown as PyValue[]],
          ['dependent_outputs', []],
          ['class_type', isPyDict(n) ? ((n.get('class_type') ?? null) as PyValue) : null],
        ]);
        nodeErrors.set(nodeId, entry);
      }
      (entry.get('dependent_outputs') as PyValue[]).push(o);
    }
  }
  const goodOutputs = pySetOrder(good);
  if (goodOutputs.length === 0) {
    const details = failed
      .flatMap(([, rs]) => rs.map((r) => `${String(r.get('message'))}: ${String(r.get('details'))}`))
      .join('\n');
    return {
      ok: false,
      error: promptError('prompt_outputs_failed_validation', 'Prompt outputs failed validation', details),
      outputs: [],
      nodeErrors,
    };
  }
  return { ok: true, outputs: goodOutputs, nodeErrors };
}
