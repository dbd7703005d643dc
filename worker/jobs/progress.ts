// Follows a running prompt's websocket events and turns them into one progress figure:
// (finished nodes + the current node's step fraction) / all nodes.
import type { ComfyEvent } from '../comfy/types';
import type { JobProgress } from './types';

export class ProgressTracker {
  private readonly total: number;
  private readonly done = new Set<string>();
  private current: string | null = null;
  private step: { value: number; max: number } | null = null;

  constructor(totalNodes: number) {
    this.total = Math.max(totalNodes, 1);
  }

  /** Applies one event; true when the figure changed. */
  update(event: ComfyEvent): boolean {
    const { type, data } = event;
    if (type === 'execution_cached' && Array.isArray(data.nodes)) {
      for (const node of data.nodes) this.done.add(String(node));
      return data.nodes.length > 0;
    }
    if (type === 'executing') {
      if (this.current !== null) this.done.add(this.current);
      this.current = typeof data.node === 'string' ? data.node : null;
      this.step = null;
      return true;
    }
    if (type === 'executed' && typeof data.node === 'string') {
      this.done.add(data.node);
      return true;
    }
    if (type === 'progress' && typeof data.value === 'number' && typeof data.max === 'number' && data.max > 0) {
      if (typeof data.node === 'string') this.current = data.node;
      this.step = { value: data.value, max: data.max };
      return true;
    }
    return false;
  }

  snapshot(): JobProgress {
    const running = this.current !== null && !this.done.has(this.current);
    const fraction = running && this.step ? this.step.value / this.step.max : 0;
    const completed = Math.min(this.done.size, this.total);
    const percentage = Math.min(100, ((completed + fraction) / this.total) * 100);
    return {
      percentage: Math.round(percentage * 10) / 10,
      completed_nodes: completed,
      total_nodes: this.total,
      current_node: running ? this.current : null,
      current_node_progress: running ? this.step : null,
    };
  }
}
