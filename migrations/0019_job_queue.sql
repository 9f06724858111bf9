-- The queued jobs get a table of their own, and a granted hold's outcome is
-- its hold row: the worker no longer writes the job row of a grant.
--
-- Measured (scripts/statement-costs.sh): the job's decision was the largest
-- share of the database's work per granted hold, most of it the status
-- index jobs_queue (a delete-marked entry, a new one and the purge of the
-- old at every decision). Now the api inserts the job and its queue row in
-- one transaction; the worker deletes the queue row when it decides the
-- job, in the transaction of its effect, and writes the job row only for
-- an outcome the hold row does not tell: a refusal, an order, a payment.
--
-- job_queue (kind, lane, id): the jobs not yet decided, per kind and lane
-- (a hold's product, an order's partition; 0 for payments), in arrival
-- order (time-ordered ids). Places in line read one lane's first rows; the
-- relay reads the whole table (the backlog, not the history).
--
-- A job's status as a client sees it (the view job_states below):
--   a queue row                         -> queued
--   else jobs.status = 'queued' and a hold row with the job's id
--                                       -> succeeded (at the hold's created_at)
--   else                                -> jobs.status
--
-- jobs_created goes too: retention deletes by id, whose first 48 bits are
-- the time the api recorded the job (UUIDv7), through the primary key.
CREATE TABLE IF NOT EXISTS job_queue (
    kind VARCHAR(16) NOT NULL,
    lane BIGINT NOT NULL,
    id BINARY(16) NOT NULL,
    PRIMARY KEY (kind, lane, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO job_queue (kind, lane, id)
    SELECT kind, COALESCE(lane, 0), id FROM jobs WHERE status = 'queued';

ALTER TABLE jobs
    DROP INDEX jobs_queue,
    DROP INDEX jobs_created;

-- For operators, scripts and tests: every job with the status and the
-- completion time a client is shown.
CREATE OR REPLACE VIEW job_states AS
    SELECT j.id, j.kind, j.lane, j.command, j.result, j.error, j.created_at, j.relayed_at,
        CASE
            WHEN q.id IS NOT NULL THEN 'queued'
            WHEN j.status = 'queued' AND h.id IS NOT NULL THEN 'succeeded'
            ELSE j.status
        END AS status,
        CASE
            WHEN q.id IS NOT NULL THEN NULL
            ELSE COALESCE(j.completed_at, h.created_at)
        END AS completed_at
    FROM jobs j
    LEFT JOIN job_queue q ON q.kind = j.kind AND q.lane = COALESCE(j.lane, 0) AND q.id = j.id
    LEFT JOIN holds h ON h.id = j.id;
