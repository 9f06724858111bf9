-- Every secondary index of `jobs` is written when the api records a job,
-- and again (a delete and an insert) when the worker decides it, if it
-- holds `status` or `completed_at`. Three such indexes made the job rows
-- the largest share of the database's work per granted hold.
--   jobs_queue: the queued jobs, per kind and lane, in id order (places in
--     line); the relay reads the queued jobs through it too.
--   jobs_created: retention, by when a job was recorded. Written once: a
--     job's created_at never changes.
ALTER TABLE jobs
    DROP INDEX jobs_stuck,
    DROP INDEX jobs_completed,
    DROP INDEX jobs_lane,
    ADD KEY jobs_queue (status, kind, lane),
    ADD KEY jobs_created (created_at);
