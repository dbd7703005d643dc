// The one-at-a-time executor: ComfyUI's PromptExecutor.execute_async with its ExecutionList
// ordering, input-signature cache, progress registry and websocket messages, in the recorded
// order. A crash of the simulated process aborts it silently at the next step (nothing more is
// sent or written), as a killed process would.

import { tracebackFrame } from './files';
import type { NodeClass, NodeEnv, NodeOutput } from './nodes';
import { PyFloat } from '../worker/util/pyjson';
import { PyException, isPyDict, pyRepr, pySetOrder, pyStr, type PyDict, type PyValue } from './pyvalues';
import type { QueueItem } from './queue';
import type { ObjectInfoEntry } from './schemas';
import { isLink } from './validate';
import type { WsHub } from './wshub';

/** The simulated process died; unwind without doing anything else. */
export class Aborted extends Error {}

class InterruptProcessing extends Error {}

interface UiEntry {
  output: PyDict;
  meta: PyDict;
}

/** ComfyUI's classic cache: outputs and UI by input signature, trimmed to the current prompt. */
export class ExecCache {
  readonly outputs = new Map<string, unknown[][]>();
  readonly ui = new Map<string, UiEntry>();
  /** clean_unused(): keep only entries the new prompt can use. */
  keepOnly(keys: Set<string>): void {
    for (const k of [...this.outputs.keys()]) if (!keys.has(k)) this.outputs.delete(k);
    for (const k of [...this.ui.keys()]) if (!keys.has(k)) this.ui.delete(k);
  }
  clear(): void {
    this.outputs.clear();
    this.ui.clear();
  }
}

/** What the executor needs from the simulated process. */
export interface ExecHost {
  readonly hub: WsHub;
  readonly classes: ReadonlyMap<string, NodeClass>;
  readonly env: NodeEnv;
  readonly cache: ExecCache;
  nodeDelay(classType: string): number;
  interruptRequested(): boolean;
  clearInterrupt(): void;
  setCurrent(clientId: string | null, lastNodeId: string | null): void;
  alive(): boolean;
  /** Resolves after ms, or early when the process dies. */
  sleep(ms: number): Promise<void>;
}

export interface ExecResult {
  success: boolean;
  messages: Array<[string, PyDict]>;
  outputs: PyDict;
  meta: PyDict;
  clientId: string | null;
}

const COMMON_FRAMES = [
  tracebackFrame('execution.py', 498, 'execute'),
  tracebackFrame('execution.py', 316, 'get_output_data'),
  tracebackFrame('execution.py', 290, '_async_map_node_over_list'),
  tracebackFrame('execution.py', 278, 'process_inputs'),
];

/** ComfyUI's format_value for current_inputs. */
function formatValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || typeof v === 'string' || v instanceof PyFloat)
    return v;
  return pyStr(v);
}

/** A hashable rendering of a constant input; Python equality (1 == 1.0 == True), NaN never equal. */
function canon(v: unknown, nan: () => string): string {
  if (v === null || v === undefined) return 'N';
  if (typeof v === 'boolean') return v ? 'n1' : 'n0';
  if (typeof v === 'number' || typeof v === 'bigint') return 'n' + String(v);
  if (v instanceof PyFloat) return Number.isNaN(v.value) ? nan() : 'n' + String(v.value);
  if (typeof v === 'string') return 's' + JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map((x) => canon(x, nan)).join(',') + ']';
  if (isPyDict(v))
    return (
      '{' +
      [...v]
        .map(([k, x]) => JSON.stringify(k) + ':' + canon(x, nan))
        .sort()
        .join(',') +
      '}'
    );
  return 'o' + pyRepr(v);
}

/** comfy_execution.graph.ExecutionList without lazy inputs, subgraphs and async nodes. */
class ExecutionList {
  private readonly pending = new Map<string, true>();
  private readonly blockers = new Map<string, Set<string>>();
  private readonly blocking = new Map<string, Set<string>>();

  constructor(
    private readonly prompt: PyDict,
    private readonly isCached: (id: string) => boolean,
    private readonly isOutput: (id: string) => boolean,
  ) {}

  private inputsOf(id: string): PyDict {
    const n = this.prompt.get(id);
    const inputs = isPyDict(n) ? n.get('inputs') : undefined;
    return isPyDict(inputs) ? inputs : new Map();
  }

  addNode(start: string): void {
    const stack = [start];
    const links: Array<[string, string]> = [];
    while (stack.length > 0) {
      const id = stack.pop() as string;
      if (this.pending.has(id)) continue;
      this.pending.set(id, true);
      this.blockers.set(id, new Set());
      this.blocking.set(id, new Set());
      for (const v of this.inputsOf(id).values()) {
        if (!isLink(v) || !this.prompt.has(v[0])) continue;
        if (!this.isCached(v[0])) stack.push(v[0]);
        links.push([v[0], id]);
      }
    }
    for (const [from, to] of links) {
      if (!this.isCached(from) || this.pending.has(from)) {
        this.addNode(from);
        this.blocking.get(from)?.add(to);
        this.blockers.get(to)?.add(from);
      }
    }
  }

  isEmpty(): boolean {
    return this.pending.size === 0;
  }

  /** stage_node_execution's ux_friendly_pick_node. */
  stage(): string {
    const ready = [...this.pending.keys()].filter((id) => (this.blockers.get(id)?.size ?? 0) === 0);
    if (ready.length === 0) return this.pending.keys().next().value as string;
    for (const id of ready) if (this.isOutput(id)) return id;
    for (const id of ready) for (const b of this.blocking.get(id) ?? []) if (this.isOutput(b)) return id;
    for (const id of ready) {
      for (const b of this.blocking.get(id) ?? []) {
        if (!this.pending.has(b)) continue;
        for (const b1 of this.blocking.get(b) ?? []) if (this.isOutput(b1)) return id;
      }
    }
    return ready[0] as string;
  }

  complete(id: string): void {
    this.pending.delete(id);
    for (const b of this.blockers.get(id) ?? []) this.blocking.get(b)?.delete(id);
    for (const b of this.blocking.get(id) ?? []) this.blockers.get(b)?.delete(id);
    this.blockers.delete(id);
    this.blocking.delete(id);
  }
}

type Progress = { state: 'pending' | 'running' | 'finished'; value: number | PyFloat; max: number | PyFloat };

type Failure =
  | { nodeId: string; interrupted: true }
  | { nodeId: string; interrupted: false; message: string; type: string; traceback: string[]; inputs: PyDict };

/** Runs one prompt. Create one per prompt. */
export class PromptRun {
  private clientId: string | null = null;
  private readonly messages: Array<[string, PyDict]> = [];
  private readonly progress = new Map<string, Progress>();
  private readonly sigs = new Map<string, string>();
  private readonly executed: string[] = [];
  private nanCount = 0;
  private readonly prompt: PyDict;
  private readonly promptId: string;

  constructor(
    private readonly host: ExecHost,
    private readonly item: QueueItem,
  ) {
    this.prompt = item.prompt;
    this.promptId = item.promptId;
  }

  private alive(): void {
    if (!this.host.alive()) throw new Aborted();
  }

  /** send_sync to the prompt's client (null broadcasts). */
  private send(event: string, data: PyDict, to: string | null): void {
    this.host.hub.send(event, data, to, this.promptId);
    this.alive();
  }

  /** PromptExecutor.add_message: stamps, records for history, sends. */
  private addMessage(event: string, data: Array<[string, PyValue]>, broadcast: boolean): void {
    const d: PyDict = new Map([...data, ['timestamp', Date.now()]]);
    this.messages.push([event, d]);
    if (this.clientId !== null || broadcast) this.send(event, d, this.clientId);
  }

  private node(id: string): PyDict {
    return this.prompt.get(id) as PyDict;
  }

  private classOf(id: string): NodeClass {
    return this.host.classes.get(String(this.node(id).get('class_type'))) as NodeClass;
  }

  private schemaOf(id: string): ObjectInfoEntry {
    return this.classOf(id).schema(this.host.env);
  }

  private inputsOf(id: string): PyDict {
    const inputs = this.node(id).get('inputs');
    return isPyDict(inputs) ? inputs : new Map();
  }

  // --- progress registry (comfy_execution.progress) ---------------------------------------------

  private sendProgressState(): void {
    const nodes: PyDict = new Map();
    for (const [id, p] of this.progress) {
      if (p.state === 'pending') continue;
      nodes.set(
        id,
        new Map<string, PyValue>([
          ['value', p.value],
          ['max', p.max],
          ['state', p.state],
          ['node_id', id],
          ['prompt_id', this.promptId],
          ['display_node_id', id],
          ['parent_node_id', null],
          ['real_node_id', id],
        ]),
      );
    }
    this.send(
      'progress_state',
      new Map<string, PyValue>([
        ['prompt_id', this.promptId],
        ['nodes', nodes],
      ]),
      this.clientId,
    );
  }

  private entry(id: string): Progress {
    let p = this.progress.get(id);
    if (!p) {
      p = { state: 'pending', value: 0, max: 1 };
      this.progress.set(id, p);
    }
    return p;
  }

  private startProgress(id: string): void {
    Object.assign(this.entry(id), { state: 'running', value: new PyFloat(0), max: new PyFloat(1) });
    this.sendProgressState();
  }

  private updateProgress(id: string, value: number, max: number): void {
    Object.assign(this.entry(id), { state: 'running', value, max });
    this.sendProgressState();
  }

  private finishProgress(id: string): void {
    const p = this.entry(id);
    p.state = 'finished';
    p.value = p.max;
    this.sendProgressState();
  }

  // --- cache keys --------------------------------------------------------------------------------

  private isChanged(id: string): string {
    const cls = this.classOf(id);
    if (!cls.isChanged) return 'F';
    const node = this.node(id);
    try {
      const v = cls.isChanged(this.inputsOf(id), this.host.env);
      node.set('is_changed', [v as PyValue]);
      return canon([v], () => `nan#${this.nanCount++}`);
    } catch {
      node.set('is_changed', new PyFloat(NaN));
      return `nan#${this.nanCount++}`;
    }
  }

  /** Input signature: class, IS_CHANGED, and inputs with links replaced by their source's key. */
  private signature(id: string, seen = new Set<string>()): string {
    const known = this.sigs.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return `cycle#${id}`;
    seen.add(id);
    const cls = this.classOf(id);
    const schema = this.schemaOf(id);
    const parts = [JSON.stringify(cls.name), this.isChanged(id)];
    if (Object.values(schema.input.hidden ?? {}).includes('UNIQUE_ID')) parts.push(JSON.stringify(id));
    const inputs = this.inputsOf(id);
    for (const k of [...inputs.keys()].sort()) {
      const v = inputs.get(k);
      if (isLink(v) && this.prompt.has(v[0])) parts.push(`${JSON.stringify(k)}=>(${this.signature(v[0], seen)})#${String(v[1])}`);
      else parts.push(`${JSON.stringify(k)}=${canon(v, () => `nan#${this.nanCount++}`)}`);
    }
    const sig = parts.join('|');
    this.sigs.set(id, sig);
    return sig;
  }

  private cached(id: string): unknown[][] | undefined {
    return this.host.cache.outputs.get(this.sigs.get(id) ?? '');
  }

  // --- running -----------------------------------------------------------------------------------

  async run(): Promise<ExecResult> {
    this.host.clearInterrupt();
    const extra = this.item.extraData;
    const cid = isPyDict(extra) ? extra.get('client_id') : undefined;
    // A non-string client_id is "set" for ComfyUI but matches no socket.
    this.clientId = cid === undefined ? null : typeof cid === 'string' ? cid : `\u0000${pyRepr(cid)}`;
    this.host.setCurrent(this.clientId, null);
    this.addMessage('execution_start', [['prompt_id', this.promptId]], false);

    for (const id of this.prompt.keys()) this.signature(id);
    this.host.cache.keepOnly(new Set(this.sigs.values()));
    const cachedNodes = [...this.prompt.keys()].filter((id) => this.cached(id) !== undefined);
    this.addMessage(
      'execution_cached',
      [
        ['nodes', cachedNodes],
        ['prompt_id', this.promptId],
      ],
      false,
    );

    const list = new ExecutionList(
      this.prompt,
      (id) => this.cached(id) !== undefined,
      (id) => this.schemaOf(id).output_node === true,
    );
    const currentOutputs = pySetOrder(this.prompt.keys());
    for (const o of this.item.outputs) list.addNode(o);

    let success = true;
    while (!list.isEmpty()) {
      const id = list.stage();
      const failure = await this.executeNode(id);
      if (failure) {
        success = false;
        this.handleError(failure, currentOutputs);
        break;
      }
      list.complete(id);
    }
    if (success) this.addMessage('execution_success', [['prompt_id', this.promptId]], false);

    const outputs: PyDict = new Map();
    const meta: PyDict = new Map();
    for (const id of currentOutputs) {
      const ui = this.host.cache.ui.get(this.sigs.get(id) ?? '');
      if (!ui) continue;
      outputs.set(id, ui.output);
      meta.set(id, ui.meta);
    }
    this.host.setCurrent(this.clientId, null);
    return { success, messages: this.messages, outputs, meta, clientId: this.clientId };
  }

  private handleError(f: Failure, currentOutputs: string[]): void {
    const base: Array<[string, PyValue]> = [
      ['prompt_id', this.promptId],
      ['node_id', f.nodeId],
      ['node_type', String(this.node(f.nodeId).get('class_type'))],
      ['executed', pySetOrder(this.executed)],
    ];
    if (f.interrupted) {
      this.addMessage('execution_interrupted', base, true);
      return;
    }
    this.addMessage(
      'execution_error',
      [
        ...base,
        ['exception_message', f.message],
        ['exception_type', f.type],
        ['traceback', f.traceback],
        ['current_inputs', f.inputs],
        ['current_outputs', currentOutputs],
      ],
      false,
    );
  }

  /** get_input_data: per input a list of values (links give the source's output list). */
  private inputData(
    id: string,
    cls: NodeClass,
    schema: ObjectInfoEntry,
  ): { data: Map<string, unknown[]>; hidden: Map<string, unknown> } {
    const data = new Map<string, unknown[]>();
    for (const [x, v] of this.inputsOf(id)) {
      const spec = schema.input.required?.[x] ?? schema.input.optional?.[x];
      const category = spec ? 'input' : schema.input.hidden?.[x] !== undefined ? 'hidden' : null;
      const raw = spec?.[1]?.['rawLink'] === true;
      if (isLink(v) && !raw) {
        const out = this.host.cache.outputs.get(this.sigs.get(v[0]) ?? '');
        const idx = Number(v[1]);
        const picked = out ? (idx < 0 ? out[out.length + idx] : out[idx]) : undefined;
        data.set(x, picked ?? [null]);
      } else if (category !== null) data.set(x, [v]);
    }
    const hidden = new Map<string, unknown>();
    const extra = this.item.extraData;
    for (const [x, kind] of Object.entries(schema.input.hidden ?? {})) {
      let value: unknown;
      if (kind === 'PROMPT') value = this.prompt;
      else if (kind === 'EXTRA_PNGINFO') value = isPyDict(extra) ? (extra.get('extra_pnginfo') ?? null) : null;
      else if (kind === 'UNIQUE_ID') value = id;
      else continue;
      hidden.set(x, value);
      if (!cls.v3) data.set(x, [value]);
    }
    return { data, hidden };
  }

  private async executeNode(id: string): Promise<Failure | null> {
    const cls = this.classOf(id);
    const schema = this.schemaOf(id);
    const cached = this.cached(id);
    if (cached !== undefined) {
      if (this.clientId !== null) {
        const ui = this.host.cache.ui.get(this.sigs.get(id) ?? '');
        this.send(
          'executed',
          new Map<string, PyValue>([
            ['node', id],
            ['display_node', id],
            ['output', ui ? ui.output : null],
            ['prompt_id', this.promptId],
          ]),
          this.clientId,
        );
      }
      this.finishProgress(id);
      return null;
    }
    this.startProgress(id);
    const { data, hidden } = this.inputData(id, cls, schema);
    if (this.clientId !== null) {
      this.host.setCurrent(this.clientId, id);
      this.send(
        'executing',
        new Map<string, PyValue>([
          ['node', id],
          ['display_node', id],
          ['prompt_id', this.promptId],
        ]),
        this.clientId,
      );
    }
    try {
      const calls = Math.max(1, ...[...data.values()].map((l) => l.length));
      const results: NodeOutput[] = [];
      for (let i = 0; i < calls; i++) {
        if (this.host.interruptRequested()) throw new InterruptProcessing();
        if (i === 0) {
          await this.host.sleep(this.host.nodeDelay(cls.name));
          this.alive();
        }
        const inputs = new Map<string, unknown>();
        for (const [k, l] of data) inputs.set(k, l[Math.min(i, l.length - 1)]);
        results.push(
          await cls.run({
            nodeId: id,
            promptId: this.promptId,
            inputs,
            hidden,
            env: this.host.env,
            progress: async (value, max) => {
              if (this.host.interruptRequested()) throw new InterruptProcessing();
              this.updateProgress(id, value, max);
              this.send(
                'progress',
                new Map<string, PyValue>([
                  ['value', value],
                  ['max', max],
                  ['prompt_id', this.promptId],
                  ['node', id],
                ]),
                this.clientId,
              );
            },
            sleep: async (ms) => {
              await this.host.sleep(ms);
              this.alive();
            },
          }),
        );
        this.alive();
      }
      const width = Math.max(0, ...results.map((r) => r.result?.length ?? 0));
      const output: unknown[][] = Array.from({ length: width }, (_, k) => results.map((r) => r.result?.[k]));
      const uis = results.map((r) => r.ui).filter((u): u is Record<string, unknown[]> => u !== undefined);
      const first = uis[0];
      if (first) {
        const ui: PyDict = new Map();
        for (const k of Object.keys(first)) ui.set(k, uis.flatMap((u) => u[k] ?? []) as PyValue[]);
        const meta: PyDict = new Map<string, PyValue>([
          ['node_id', id],
          ['display_node', id],
          ['parent_node', null],
          ['real_node_id', id],
        ]);
        this.host.cache.ui.set(this.sigs.get(id) ?? '', { output: ui, meta });
        if (this.clientId !== null)
          this.send(
            'executed',
            new Map<string, PyValue>([
              ['node', id],
              ['display_node', id],
              ['output', ui],
              ['prompt_id', this.promptId],
            ]),
            this.clientId,
          );
      }
      this.host.cache.outputs.set(this.sigs.get(id) ?? '', output);
    } catch (e) {
      if (e instanceof Aborted) throw e;
      if (e instanceof InterruptProcessing) return { nodeId: id, interrupted: true };
      const ex = e instanceof PyException ? e : new PyException('Exception', e instanceof Error ? e.message : String(e));
      const inputs: PyDict = new Map();
      for (const [k, l] of data) inputs.set(k, l.map(formatValue) as PyValue[]);
      return {
        nodeId: id,
        interrupted: false,
        message: `${ex.pyMessage}\n`,
        type: ex.excType,
        traceback: [...COMMON_FRAMES, ...ex.frames],
        inputs,
      };
    }
    this.finishProgress(id);
    this.executed.push(id);
    return null;
  }
}
