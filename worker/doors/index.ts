// Every front door, by WORKER_MODE. Adding a door: a folder beside these and one line here.
import type { StartDoor } from './door';
import { startHttpDoor } from './http';
import { startRunpodDoor } from './runpod';
import { startVastDoor } from './vast';

export const DOORS: Readonly<Record<string, StartDoor>> = {
  http: startHttpDoor,
  vast: startVastDoor,
  runpod: startRunpodDoor,
};
