-- Each worker's latest heartbeat: the partitions it consumes, written
-- every second (worker::membership's check). Operators read it through
-- GET /api/v1/admin/overview. A row is the worker's own: it deletes it when
-- it stops cleanly; rows unseen for an hour (a worker that died) are
-- deleted by the workers still running. `seen_at` is the server's clock
-- (NOW(3)), so workers on hosts with skewed clocks compare fairly.
CREATE TABLE IF NOT EXISTS workers (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    -- Ascending partition numbers separated by commas; empty for a standby.
    partitions VARCHAR(4200) CHARACTER SET ascii NOT NULL,
    seen_at DATETIME(3) NOT NULL,
    KEY workers_seen (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
