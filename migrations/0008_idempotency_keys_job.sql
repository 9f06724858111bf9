-- Withdrawing a job that was answered 503 deletes its key by job_id; without
-- an index that DELETE would scan, and lock, every key.
CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id);
