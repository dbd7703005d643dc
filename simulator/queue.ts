// ComfyUI's PromptQueue: a heapq of (number, prompt_id, ...) items (so /queue lists pending
// prompts in heap-array order, exactly as Python's heapq leaves them), the running items, and the
// history dict (insertion ordered, at most 10000 entries).

import { PyFloat } from '../worker/util/pyjson';
import { pyDeepCopy, type PyDict, type PyValue } from './pyvalues';

export interface QueueItem {
  /** Priority: the per-process counter, or the body's "number" (a Python float). */
  number: number | PyFloat;
  promptId: string;
  prompt: PyDict;
  extraData: PyValue;
  outputs: string[];
  /** extra_data keys ComfyUI keeps out of /queue and history (API keys). */
  sensitive: PyDict;
}

export interface HistoryEntry {
  prompt: PyValue[];
  outputs: PyDict;
  status: { status_str: 'success' | 'error'; completed: boolean; messages: Array<[string, PyDict]> };
  meta: PyDict;
}

const MAXIMUM_HISTORY_SIZE = 10000;

function num(v: number | PyFloat): number {
  return v instanceof PyFloat ? v.value : v;
}

/** Tuple order of queue items: number, then prompt_id. */
function less(a: QueueItem, b: QueueItem): boolean {
  const na = num(a.number);
  const nb = num(b.number);
  if (na !== nb) return na < nb;
  return a.promptId < b.promptId;
}

export function publicItem(i: QueueItem): PyValue[] {
  return [i.number, i.promptId, i.prompt, i.extraData, i.outputs];
}

export class PromptQueue {
  private heap: QueueItem[] = [];
  private readonly running = new Map<number, QueueItem>();
  private taskCounter = 0;
  private readonly history = new Map<string, HistoryEntry>();

  // heapq._siftdown / _siftup, verbatim in behaviour so the array order matches Python's.
  private siftDown(start: number, posIn: number): void {
    const h = this.heap;
    let pos = posIn;
    const item = h[pos] as QueueItem;
    while (pos > start) {
      const parentPos = (pos - 1) >> 1;
      const parent = h[parentPos] as QueueItem;
      if (less(item, parent)) {
        h[pos] = parent;
        pos = parentPos;
        continue;
      }
      break;
    }
    h[pos] = item;
  }

  private siftUp(posIn: number): void {
    const h = this.heap;
    let pos = posIn;
    const end = h.length;
    const start = pos;
    const item = h[pos] as QueueItem;
    let child = 2 * pos + 1;
    while (child < end) {
      const right = child + 1;
      if (right < end && !less(h[child] as QueueItem, h[right] as QueueItem)) child = right;
      h[pos] = h[child] as QueueItem;
      pos = child;
      child = 2 * pos + 1;
    }
    h[pos] = item;
    this.siftDown(start, pos);
  }

  put(item: QueueItem): void {
    this.heap.push(item);
    this.siftDown(0, this.heap.length - 1);
  }

  /** Takes the next item; it counts as running until taskDone(). */
  get(): { item: QueueItem; taskId: number } | null {
    const last = this.heap.pop();
    if (!last) return null;
    let item = last;
    if (this.heap.length > 0) {
      item = this.heap[0] as QueueItem;
      this.heap[0] = last;
      this.siftUp(0);
    }
    const taskId = this.taskCounter++;
    this.running.set(taskId, { ...item, prompt: pyDeepCopy(item.prompt), extraData: pyDeepCopy(item.extraData) });
    return { item, taskId };
  }

  taskDone(taskId: number, result: { outputs: PyDict; meta: PyDict }, status: HistoryEntry['status']): void {
    const item = this.running.get(taskId);
    this.running.delete(taskId);
    if (!item) return;
    if (this.history.size > MAXIMUM_HISTORY_SIZE) {
      const oldest = this.history.keys().next();
      if (!oldest.done) this.history.delete(oldest.value);
    }
    this.history.set(item.promptId, { prompt: publicItem(item), outputs: result.outputs, status, meta: result.meta });
  }

  remaining(): number {
    return this.heap.length + this.running.size;
  }

  runningItems(): QueueItem[] {
    return [...this.running.values()];
  }

  pendingItems(): QueueItem[] {
    return [...this.heap];
  }

  wipe(): void {
    this.heap = [];
  }

  /** delete_queue_item: removes the first matching pending item. Returns how many status
   *  broadcasts ComfyUI makes for it (2 when it was the last item: wipe_queue also notifies). */
  deleteFirst(pred: (i: QueueItem) => boolean): number {
    const idx = this.heap.findIndex(pred);
    if (idx < 0) return 0;
    if (this.heap.length === 1) {
      this.heap = [];
      return 2;
    }
    this.heap.splice(idx, 1);
    for (let k = (this.heap.length >> 1) - 1; k >= 0; k--) this.siftUp(k);
    return 1;
  }

  historyOne(id: string): Map<string, HistoryEntry> {
    const e = this.history.get(id);
    return e ? new Map([[id, e]]) : new Map();
  }

  /** get_history(max_items, offset): offset -1 with max_items means "the last max_items". */
  historyList(maxItems: number | null, offsetIn: number): Map<string, HistoryEntry> {
    let offset = offsetIn;
    if (offset < 0 && maxItems !== null) offset = this.history.size - maxItems;
    const out = new Map<string, HistoryEntry>();
    let i = 0;
    for (const [k, v] of this.history) {
      if (i >= offset) {
        out.set(k, v);
        if (maxItems !== null && out.size >= maxItems) break;
      }
      i++;
    }
    return out;
  }

  deleteHistory(id: string): void {
    this.history.delete(id);
  }

  wipeHistory(): void {
    this.history.clear();
  }
}
