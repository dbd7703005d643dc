import { trace } from '../../test/support/traces';
import type { ComfyEvent } from '../comfy/types';
import { ProgressTracker } from './progress';

test('the recorded success run goes from 0 to 100% node by node', () => {
  const { messages } = trace<{ messages: ComfyEvent[] }>('ws_success_run.json');
  const tracker = new ProgressTracker(4);
  const seen: number[] = [];
  for (const event of messages) if (tracker.update(event)) seen.push(tracker.snapshot().percentage);
  expect(seen[0]).toBe(0);
  expect(seen).toEqual([...seen].sort((a, b) => a - b));
  expect(tracker.snapshot()).toMatchObject({ percentage: 100, completed_nodes: 4, total_nodes: 4, current_node: null });
});

test('sampler steps move the figure inside a node; cached nodes count as done', () => {
  const tracker = new ProgressTracker(4);
  tracker.update({ type: 'execution_cached', data: { nodes: ['1', '2'] } });
  tracker.update({ type: 'executing', data: { node: '3' } });
  tracker.update({ type: 'progress', data: { value: 5, max: 10, node: '3' } });
  expect(tracker.snapshot()).toEqual({
    percentage: 62.5,
    completed_nodes: 2,
    total_nodes: 4,
    current_node: '3',
    current_node_progress: { value: 5, max: 10 },
  });
  expect(tracker.update({ type: 'status', data: {} })).toBe(false);
});
