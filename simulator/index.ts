// A faithful ComfyUI v0.3.65 simulator (HTTP + websocket) for tests of the worker.
export { startSimulator } from './simulator';
export type { Simulator, SimulatorOptions, SimulatorFaults, SimNodeDef, ObjectInfoEntry, RecordedRequest } from './types';
