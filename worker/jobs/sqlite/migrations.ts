// The job database's schema, as numbered migrations. PRAGMA user_version records how many have
// run; each runs once, in order, inside a transaction. Append new ones; never edit old ones.
import type { Database } from 'better-sqlite3';

export const MIGRATIONS: readonly string[] = [
  // 1: jobs and their inline output files
  `
  CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- submission order: FIFO
    id           TEXT    NOT NULL UNIQUE,
    door         TEXT    NOT NULL,
    sync         INTEGER NOT NULL DEFAULT 0,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    prompt_id    TEXT,                              -- minted before submission, for recovery
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL    NOT NULL,                  -- epoch seconds
    started_at   REAL,
    completed_at REAL,
    error        TEXT,                              -- JSON ErrorBody
    secrets      BLOB,                              -- AES-GCM sealed JobSecrets; NULL once terminal
    spec         TEXT    NOT NULL,                  -- JSON JobSpec without images
    inputs       TEXT,                              -- JSON input images; NULL once terminal
    result       TEXT                               -- JSON JobResult (large, so last)
  );
  CREATE INDEX jobs_status_seq ON jobs (status, seq);
  CREATE INDEX jobs_completed_at ON jobs (completed_at) WHERE completed_at IS NOT NULL;
  CREATE TABLE job_files (
    job_id TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    bytes  BLOB    NOT NULL,
    PRIMARY KEY (job_id, idx)
  ) WITHOUT ROWID;
  `,
  // 2: job counts per status kept by triggers, so admission (MAX_QUEUE_SIZE), /stats and /health
  //    read five rows instead of counting a deep queue on every request
  `
  CREATE TABLE job_counts (
    status TEXT    PRIMARY KEY,
    n      INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO job_counts (status, n) VALUES ('pending', 0), ('running', 0), ('completed', 0), ('failed', 0), ('cancelled', 0);
  UPDATE job_counts SET n = (SELECT COUNT(*) FROM jobs WHERE jobs.status = job_counts.status);
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;
  END;
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
  END;
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF status ON jobs WHEN OLD.status <> NEW.status BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;
  END;
  `,
  // 3: the webhook outbox: one final delivery per job that asked for a webhook. The row is made
  // with the job ('waiting') and armed in the same transaction that ends the job ('pending'),
  // so a crash can neither lose nor duplicate it.
  `
  CREATE TABLE webhook_deliveries (
    job_id          TEXT    PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url             BLOB,                           -- sealed (a URL may carry a token); NULL when done
    extra           TEXT,                           -- JSON extra_params
    signed          INTEGER NOT NULL DEFAULT 1,     -- 0: the request asked for an unsigned webhook
    secret          BLOB,                           -- sealed request secret; NULL when done
    timeout_s       REAL,                           -- per-request timeout, else WEBHOOK_TIMEOUT_S
    status          TEXT    NOT NULL CHECK (status IN ('waiting', 'pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,                           -- epoch seconds
    last_error      TEXT,
    created_at      REAL    NOT NULL,
    finished_at     REAL
  );
  CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
  `,
  // 4: a job's source (the door that accepted it) and contract (the shape it is answered in),
  //    which version 1's `door` mixed: 'http' meant worker-comfyui's shape over the HTTP door and
  //    'wrapper' the api-wrapper's.
  `
  ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'http';
  ALTER TABLE jobs ADD COLUMN contract TEXT NOT NULL DEFAULT 'worker-comfyui';
  UPDATE jobs SET source = CASE door WHEN 'wrapper' THEN 'http' ELSE door END,
                  contract = CASE door WHEN 'http' THEN 'worker-comfyui' WHEN 'runpod' THEN 'worker-comfyui' ELSE 'wrapper' END;
  ALTER TABLE jobs DROP COLUMN door;
  `,
  // 5: the ComfyUI backend (its base URL) a job's prompt was handed to, so recovery, cancel and
  //    outputs talk to the one that has it when there are several
  `
  ALTER TABLE jobs ADD COLUMN backend TEXT;
  `,
  // 6: output files live on the data volume beside the database (jobs/files.ts), the row keeps
  //    their path and size. Rows of earlier versions keep their bytes and are still served from
  //    them until their job is deleted. Jobs with input files are found by an index (the sweep).
  `
  CREATE TABLE job_files_v5 (
    job_id TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    path   TEXT,                                    -- relative to the job files folder
    size   INTEGER NOT NULL,
    bytes  BLOB,                                    -- before version 5: the bytes themselves
    PRIMARY KEY (job_id, idx),
    CHECK ((path IS NULL) <> (bytes IS NULL))
  ) WITHOUT ROWID;
  INSERT INTO job_files_v5 (job_id, idx, size, bytes) SELECT job_id, idx, length(bytes), bytes FROM job_files;
  DROP TABLE job_files;
  ALTER TABLE job_files_v5 RENAME TO job_files;
  CREATE INDEX jobs_with_inputs ON jobs (seq) WHERE inputs IS NOT NULL;
  `,
  // 7: a flat queue position. Every job gets a queue ordinal (qord) from a counter that never
  //    goes back, in submission order. A pending job's position is its qord minus the head's
  //    (the oldest pending job) minus the "holes" between them: ordinals of jobs that left the
  //    queue out of order (cancelled while waiting). Holes below the head are dropped as it moves,
  //    so /status costs two index lookups and a count of holes ahead, whatever the queue's depth.
  //    The store itself fills the holes when a job is put back at the head (requeue, rare).
  `
  ALTER TABLE jobs ADD COLUMN qord INTEGER;
  UPDATE jobs SET qord = seq;
  CREATE TABLE queue_order (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
  INSERT INTO queue_order (id, last) VALUES (1, COALESCE((SELECT MAX(seq) FROM jobs), 0));
  CREATE TABLE queue_holes (ord INTEGER PRIMARY KEY);
  WITH RECURSIVE
    head(o) AS (SELECT qord FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1),
    r(o) AS (SELECT o + 1 FROM head UNION ALL SELECT o + 1 FROM r WHERE o < (SELECT last FROM queue_order))
  INSERT INTO queue_holes (ord)
    SELECT o FROM r WHERE o <= (SELECT last FROM queue_order)
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.seq = r.o AND jobs.status = 'pending');
  CREATE TRIGGER jobs_qord_insert AFTER INSERT ON jobs BEGIN
    UPDATE queue_order SET last = NEW.qord WHERE NEW.qord > last;
  END;
  CREATE TRIGGER jobs_leave_queue AFTER UPDATE OF status ON jobs
    WHEN OLD.status = 'pending' AND NEW.status <> 'pending' BEGIN
    INSERT OR IGNORE INTO queue_holes (ord) VALUES (OLD.qord);
    DELETE FROM queue_holes
      WHERE ord < COALESCE((SELECT qord FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1), 9223372036854775807);
  END;
  `,
];

export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database has schema version ${current}, newer than this worker's ${MIGRATIONS.length}`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version] ?? '');
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
