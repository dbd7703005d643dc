// The simulator's timing against the recorded server (timing_runs.json): the first `status` frame
// of a prompt comes after the /prompt answer, not before; an idle server takes the prompt only a
// pickup time after its answer; and the 'recorded' figures are the recorded medians.
import { startSimulator } from '../../simulator';
import { RECORDED_TIMING, resolveTiming } from '../../simulator/timing';
import { trace } from '../support/traces';
import { WsRecorder, newClientId, submit, waitHistory } from '../contract/target';
import { chainWorkflow } from './workflows';

interface Stats {
  median: number;
}
type Summary = Record<'a' | 'b', { stats_ms: Record<string, Stats> }>;

test("a prompt's first status frame follows its /prompt answer; execution_start follows the pickup time", async () => {
  // Wide margins so that the order, not a duration, is what is checked.
  const sim = await startSimulator({ timing: { promptAnswerMs: 300, pickupMs: 300 } });
  try {
    const clientId = newClientId('timing');
    const ws = await WsRecorder.open(sim.url, clientId);
    const from = ws.messages.length;
    const promptId = await submit(sim.url, chainWorkflow('timing'), clientId);
    // At the answer, nothing of this prompt has been sent yet: not even the queue's status frame.
    expect(ws.messages.slice(from)).toEqual([]);
    const first = await ws.waitFor(() => true, from);
    expect(first).toEqual({ type: 'status', data: { status: { exec_info: { queue_remaining: 1 } } } });
    // The prompt is taken (its second status, then execution_start) a pickup time later.
    expect(ws.messages.slice(from).map((m) => m.type)).toEqual(['status']);
    await ws.waitFor((m) => m.type === 'execution_start', from);
    const types = ws.messages.slice(from).map((m) => m.type);
    expect(types.slice(0, 3)).toEqual(['status', 'status', 'execution_start']);
    await waitHistory(sim.url, promptId);
    ws.ws.close();
  } finally {
    await sim.close();
  }
});

test("the 'recorded' timing is timing_runs.json's medians less the simulator's own ~0.3 ms", () => {
  const { summary } = trace<{ summary: Summary }>('timing_runs.json');
  const median = (metric: string) => (summary.a.stats_ms[metric]!.median + summary.b.stats_ms[metric]!.median) / 2;
  const recorded = {
    promptAnswerMs: median('prompt_answer_ms'),
    pickupMs: median('execution_start_ms') - median('prompt_answer_ms'),
    historyMs: median('history_latency_ms'),
    viewMs: median('view_latency_ms'),
  };
  for (const [key, value] of Object.entries(recorded)) {
    const ours = RECORDED_TIMING[key as keyof typeof recorded] + 0.3;
    // Within 10 % of the recording.
    expect({ key, close: Math.abs(ours / value - 1) <= 0.1 }).toEqual({ key, close: true });
  }
  expect(resolveTiming(undefined)).toEqual({ promptAnswerMs: 0, pickupMs: 0, historyMs: 0, viewMs: 0 });
  expect(resolveTiming('recorded')).toBe(RECORDED_TIMING);
  expect(resolveTiming({ viewMs: 5 }).viewMs).toBe(5);
});
