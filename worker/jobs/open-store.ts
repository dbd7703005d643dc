// Opens the job store the configuration asks for. SQLite is the one backend today; a second one
// (a shared queue across machines) is chosen here, and nothing outside jobs/ changes.
import type { SecretBox } from '../secrets/secret-box';
import { SqliteJobStore } from './sqlite/store';
import type { JobStore } from './store';

export interface StoreSettings {
  /** SQLITE_DB_PATH */
  dbPath: string;
  secrets: SecretBox;
  /** Milliseconds since the epoch (tests control time with it). */
  clock?: () => number;
}

export function openJobStore(settings: StoreSettings): JobStore {
  return new SqliteJobStore({ path: settings.dbPath, secrets: settings.secrets, clock: settings.clock });
}
