// Fills a job database with `n` pending jobs in one statement (a deep queue for query plans and
// /status timings), through the same columns and triggers the store uses.
import Database from 'better-sqlite3';

export function fillQueue(file: string, n: number, spec = '{"workflow":{}}'): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.transaction(() => {
      const { last } = db.prepare('SELECT last FROM queue_order').get() as { last: number };
      db.prepare(
        `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < @n)
         INSERT INTO jobs (id, source, contract, sync, status, created_at, spec, qord)
         SELECT 'fill-' || (CAST(@last AS INTEGER) + i), 'http', 'worker-comfyui', 0, 'pending', 1, @spec, CAST(@last AS INTEGER) + i FROM r`,
      ).run({ n, last, spec });
    })();
  } finally {
    db.close();
  }
}
