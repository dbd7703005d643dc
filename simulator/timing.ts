// How long the simulated server takes to answer and to start a prompt. 'instant' (the default, for
// tests) adds nothing; 'recorded' follows a real ComfyUI v0.3.65 on a 2-core CPU machine as
// `../shared/comfy-traces/timing_runs.json` recorded it (medians over 100 runs, a Python keep-alive
// client on the same machine): /prompt answered ~3.2 ms after it was sent, `execution_start` ~2.5 ms
// after that answer, /history ~1.8 ms, /view ~2.1 ms. The simulator's own work (a few tenths of a
// millisecond per call) comes on top, so each figure here is the recorded one less ~0.3 ms.
// Small nodes then run back to back; node times stay the nodeDelayMs option's.

export interface SimulatorTiming {
  /** POST /prompt: from the request's body read to its answer (ComfyUI validates the graph). */
  promptAnswerMs: number;
  /** From the /prompt answer to `execution_start` when the server was idle (its first `status`
   *  frame goes out right after the answer, the second when the prompt is taken). */
  pickupMs: number;
  /** GET /history/{id}. */
  historyMs: number;
  /** GET /view, until the head of the answer. */
  viewMs: number;
}

export const INSTANT_TIMING: SimulatorTiming = { promptAnswerMs: 0, pickupMs: 0, historyMs: 0, viewMs: 0 };

/** The recorded medians of timing_runs.json (workflows a and b) less the simulator's own time. */
export const RECORDED_TIMING: SimulatorTiming = { promptAnswerMs: 2.9, pickupMs: 2.2, historyMs: 1.65, viewMs: 1.85 };

export type TimingOption = 'instant' | 'recorded' | Partial<SimulatorTiming>;

export function resolveTiming(option: TimingOption | undefined): SimulatorTiming {
  if (option === undefined || option === 'instant') return INSTANT_TIMING;
  if (option === 'recorded') return RECORDED_TIMING;
  return { ...INSTANT_TIMING, ...option };
}
