-- The job is the client's handle on an asynchronous command and the worker's
-- exactly-once record: its outcome is written in the transaction of its
-- effect. `command` is the published message, kept so the scheduler can
-- publish it again; `relayed_at` is when it last did (jobs_stuck serves that
-- relay; jobs_completed serves retention).
CREATE TABLE IF NOT EXISTS jobs (
    id BINARY(16) NOT NULL PRIMARY KEY,
    kind VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'queued',
    command TEXT NOT NULL,
    result TEXT NULL,
    error TEXT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    completed_at DATETIME(3) NULL,
    relayed_at DATETIME(3) NULL,
    KEY jobs_stuck (status, created_at),
    KEY jobs_completed (completed_at),
    CONSTRAINT jobs_kind_valid CHECK (kind IN ('hold', 'order', 'payment')),
    CONSTRAINT jobs_status_valid CHECK (status IN ('queued', 'succeeded', 'failed'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
