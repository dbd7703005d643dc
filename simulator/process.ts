// One simulated ComfyUI process: prompt counter, queue, history, cache, current client, interrupt
// flag, websocket registry and the prompt worker loop. crash()/restart() of the simulator throw
// a process away and start a new one, which is exactly how much state a real restart loses.

import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { Aborted, ExecCache, PromptRun, type ExecHost } from './execute';
import type { NodeClass, NodeEnv } from './nodes';
import { loads, type PyFloat } from '../worker/util/pyjson';
import {
  PyException,
  isPyDict,
  pyBool,
  pyEquals,
  pyFloat,
  pyStr,
  pyTypeName,
  toPlain,
  type PyDict,
  type PyValue,
} from './pyvalues';
import { PromptQueue, publicItem } from './queue';
import { validatePrompt } from './validate';
import { WsHub } from './wshub';

/** What POST /prompt answers (a PyException thrown instead means HTTP 500). */
export type Reply = {
  status: number;
  json: unknown;
  /** Called once the answer is written: as in ComfyUI, the queue's `status` frame and the prompt
   *  worker's pickup come after the /prompt answer, not before. */
  afterAnswer?: () => void;
};

export interface ProcessHooks {
  /** Websockets must stay silent. */
  stalled(): boolean;
  /** A message of this prompt was sent to at least one socket (fault counting). */
  sent(promptId: string): void;
  /** The worker took this prompt off the queue (before its `status` message). */
  promptStarting(promptId: string): void;
  promptFinished(promptId: string): void;
  /** POST /prompt accepted a prompt (200). `body` is the request as plain JSON. */
  accepted(promptId: string, body: unknown): void;
  nodeDelay(classType: string): number;
  /** From the /prompt answer to the pickup of a prompt by an idle prompt worker. */
  pickupMs(): number;
}

const SENSITIVE_EXTRA_DATA_KEYS = ['auth_token_comfy_org', 'api_key_comfy_org'];

/** Python's `key in container` on a request body, or a TypeError (HTTP 500). */
function has(container: PyValue, key: string): boolean {
  if (isPyDict(container)) return container.has(key);
  if (Array.isArray(container)) return container.some((c) => pyEquals(c, key));
  if (typeof container === 'string') return container.includes(key);
  throw new PyException('TypeError', `argument of type '${pyTypeName(container)}' is not iterable`);
}

/** Python's container[key] on a request body (only dicts have string keys). */
function get(container: PyValue, key: string): PyValue {
  if (isPyDict(container) && container.has(key)) return container.get(key) as PyValue;
  throw new PyException(isPyDict(container) ? 'KeyError' : 'TypeError', key);
}

/** The request JSON as plain values, for Simulator.prompts. */
function plainBody(text: string, parsed: PyValue): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return toPlain(parsed);
  }
}

export class ComfyProcess {
  readonly queue = new PromptQueue();
  readonly hub: WsHub;
  private readonly cache = new ExecCache();
  private number = 0;
  private interrupt = false;
  private clientId: string | null = null;
  private lastNodeId: string | null = null;
  private dead = false;
  private working = false;
  private freeMemory = false;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly classes: ReadonlyMap<string, NodeClass>,
    private readonly env: NodeEnv,
    private readonly hooks: ProcessHooks,
    /** The server's feature flags (GET /features), sent back on a feature_flags hello. */
    private readonly features: unknown,
  ) {
    this.hub = new WsHub({ stalled: () => hooks.stalled(), sent: (id) => hooks.sent(id) });
  }

  get alive(): boolean {
    return !this.dead;
  }

  /** The process is gone: stop the worker at its next step, wake its sleeps, drop sockets. */
  kill(): void {
    this.dead = true;
    for (const w of [...this.wakers]) w();
    this.wakers.clear();
    this.hub.terminateAll();
  }

  /** Resolves after ms, or at once when the process dies. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.dead) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private statusData(): PyDict {
    return new Map([['status', new Map([['exec_info', new Map([['queue_remaining', this.queue.remaining()]])]])]]);
  }

  /** server.queue_updated(): broadcast the queue size. */
  private queueUpdated(promptId?: string): void {
    this.hub.send('status', this.statusData(), null, promptId);
  }

  queueInfo(): PyDict {
    return new Map([['exec_info', new Map([['queue_remaining', this.queue.remaining()]])]]);
  }

  // --- POST /prompt --------------------------------------------------------------------------

  postPrompt(text: string): Reply {
    const json = loads(text);
    let number: number | PyFloat;
    if (has(json, 'number')) number = pyFloat(get(json, 'number'));
    else {
      number = this.number;
      if (has(json, 'front') && pyBool(get(json, 'front'))) number = -number;
      this.number += 1;
    }
    if (!has(json, 'prompt')) {
      const error = new Map<string, unknown>([
        ['type', 'no_prompt'],
        ['message', 'No prompt provided'],
        ['details', 'No prompt provided'],
        ['extra_info', new Map()],
      ]);
      return {
        status: 400,
        json: new Map<string, unknown>([
          ['error', error],
          ['node_errors', new Map()],
        ]),
      };
    }
    const body = isPyDict(json) ? json : new Map<string, PyValue>();
    const plain = plainBody(text, json);
    const prompt = get(json, 'prompt');
    const promptId = body.has('prompt_id') ? pyStr(body.get('prompt_id')) : randomUUID();
    const partial = body.has('partial_execution_targets') ? body.get('partial_execution_targets') : undefined;
    const valid = validatePrompt(prompt, partial, this.classes, this.env);
    const extraData: PyValue = body.has('extra_data') ? (body.get('extra_data') as PyValue) : new Map();
    if (body.has('client_id')) {
      if (!isPyDict(extraData))
        throw new PyException('TypeError', `'${pyTypeName(extraData)}' object does not support item assignment`);
      extraData.set('client_id', body.get('client_id') as PyValue);
    }
    if (!valid.ok)
      return {
        status: 400,
        json: new Map<string, unknown>([
          ['error', valid.error],
          ['node_errors', valid.nodeErrors],
        ]),
      };
    const sensitive: PyDict = new Map();
    if (isPyDict(extraData)) {
      for (const k of SENSITIVE_EXTRA_DATA_KEYS) {
        if (!extraData.has(k)) continue;
        sensitive.set(k, extraData.get(k) as PyValue);
        extraData.delete(k);
      }
    }
    this.queue.put({ number, promptId, prompt: prompt as PyDict, extraData, outputs: valid.outputs, sensitive });
    // The frame's content is the queue's as of the put; ComfyUI's send loop writes it later.
    const status = this.statusData();
    this.hooks.accepted(promptId, plain);
    return {
      status: 200,
      json: new Map<string, unknown>([
        ['prompt_id', promptId],
        ['number', number],
        ['node_errors', valid.nodeErrors],
      ]),
      afterAnswer: () => {
        this.hub.send('status', status, null, undefined);
        this.schedule(this.hooks.pickupMs());
      },
    };
  }

  // --- the prompt worker ---------------------------------------------------------------------

  /** Wakes an idle prompt worker, after `delayMs` (its pickup time); a busy one loops on its own. */
  private schedule(delayMs = 0): void {
    if (this.working || this.dead) return;
    if (delayMs > 0) void this.sleep(delayMs).then(() => this.work());
    else setImmediate(() => void this.work());
  }

  private execHost(): ExecHost {
    return {
      hub: this.hub,
      classes: this.classes,
      env: this.env,
      cache: this.cache,
      nodeDelay: (c) => this.hooks.nodeDelay(c),
      interruptRequested: () => this.interrupt,
      clearInterrupt: () => {
        this.interrupt = false;
      },
      setCurrent: (clientId, lastNodeId) => {
        this.clientId = clientId;
        this.lastNodeId = lastNodeId;
      },
      alive: () => !this.dead,
      sleep: (ms) => this.sleep(ms),
    };
  }

  private async work(): Promise<void> {
    if (this.working || this.dead) return;
    this.working = true;
    try {
      for (;;) {
        if (this.dead) return;
        const next = this.queue.get();
        if (!next) return;
        const { item, taskId } = next;
        this.hooks.promptStarting(item.promptId);
        this.queueUpdated(item.promptId);
        if (this.dead) return;
        let result;
        try {
          result = await new PromptRun(this.execHost(), item).run();
        } catch (e) {
          if (e instanceof Aborted || this.dead) return;
          throw e;
        }
        this.queue.taskDone(taskId, result, {
          status_str: result.success ? 'success' : 'error',
          completed: result.success,
          messages: result.messages,
        });
        this.queueUpdated(item.promptId);
        if (result.clientId !== null && !this.dead) {
          this.hub.send(
            'executing',
            new Map<string, PyValue>([
              ['node', null],
              ['prompt_id', item.promptId],
            ]),
            result.clientId,
            item.promptId,
          );
        }
        this.hooks.promptFinished(item.promptId);
        if (this.freeMemory) {
          this.cache.clear();
          this.freeMemory = false;
        }
      }
    } finally {
      this.working = false;
    }
  }

  // --- other routes --------------------------------------------------------------------------

  getQueue(): PyDict {
    return new Map([
      ['queue_running', this.queue.runningItems().map(publicItem)],
      ['queue_pending', this.queue.pendingItems().map(publicItem)],
    ]);
  }

  /** POST /interrupt: a falsy or missing prompt_id interrupts whatever runs. */
  postInterrupt(text: string): void {
    let json: PyValue;
    try {
      json = loads(text);
    } catch {
      json = new Map();
    }
    if (!isPyDict(json)) throw new PyException('AttributeError', `'${pyTypeName(json)}' object has no attribute 'get'`);
    const id = json.get('prompt_id') ?? null;
    if (pyBool(id) && !this.queue.runningItems().some((i) => pyEquals(i.promptId, id))) return;
    this.interrupt = true;
  }

  /** POST /queue {clear} / {delete: [...]}: pending items only. */
  postQueue(text: string): void {
    const json = loads(text);
    if (has(json, 'clear') && pyBool(get(json, 'clear'))) {
      this.queue.wipe();
      this.queueUpdated();
    }
    if (has(json, 'delete')) {
      for (const id of iterate(get(json, 'delete'))) {
        const n = this.queue.deleteFirst((i) => pyEquals(i.promptId, id));
        for (let k = 0; k < n; k++) this.queueUpdated();
      }
    }
  }

  postHistory(text: string): void {
    const json = loads(text);
    if (has(json, 'clear') && pyBool(get(json, 'clear'))) this.queue.wipeHistory();
    if (has(json, 'delete'))
      for (const id of iterate(get(json, 'delete'))) if (typeof id === 'string') this.queue.deleteHistory(id);
  }

  /** POST /free: free_memory drops the node cache once the current prompt is done. */
  postFree(text: string): void {
    const json = loads(text);
    if (!isPyDict(json)) throw new PyException('AttributeError', `'${pyTypeName(json)}' object has no attribute 'get'`);
    if (pyBool(json.get('free_memory') ?? false)) {
      if (this.working) this.freeMemory = true;
      else this.cache.clear();
    }
  }

  // --- websocket -----------------------------------------------------------------------------

  connect(ws: WebSocket, clientId: string): void {
    const sid = clientId !== '' ? clientId : randomUUID().replaceAll('-', '');
    this.hub.register(sid, ws);
    const status = this.statusData();
    status.set('sid', sid);
    this.hub.sendTo(ws, 'status', status);
    if (this.clientId === sid && this.lastNodeId !== null) this.hub.sendTo(ws, 'executing', new Map([['node', this.lastNodeId]]));
    let first = true;
    ws.on('message', (data, isBinary) => {
      if (isBinary || !first) return;
      let msg: PyValue;
      try {
        msg = loads(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
      } catch {
        return; // invalid JSON is logged and ignored; it does not count as the first message
      }
      if (!isPyDict(msg)) return;
      if (msg.get('type') === 'feature_flags') this.hub.sendTo(ws, 'feature_flags', this.features);
      first = false;
    });
  }
}

/** Python iteration over a request value (lists, dict keys, string characters). */
function iterate(v: PyValue): PyValue[] {
  if (Array.isArray(v)) return v;
  if (isPyDict(v)) return [...v.keys()];
  if (typeof v === 'string') return [...v];
  throw new PyException('TypeError', `'${pyTypeName(v)}' object is not iterable`);
}
