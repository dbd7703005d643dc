// What every front door provides: it starts listening (or polling) on top of the core and can be
// stopped. The runner is started by the caller once the door is up.
import type { Core } from '../core';

export interface DoorHandle {
  /** Where the door can be reached, e.g. http://127.0.0.1:8000 */
  url: string;
  stop(): Promise<void>;
}

export type StartDoor = (core: Core) => Promise<DoorHandle>;
