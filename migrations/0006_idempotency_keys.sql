-- Client Idempotency-Key per route. key_hash = SHA-256(route, key) keeps the
-- primary key short and byte-exact (no collation folding "A" into "a");
-- request_hash detects the same key reused with another body.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key_hash BINARY(32) NOT NULL PRIMARY KEY,
    route VARCHAR(32) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    request_hash BINARY(32) NOT NULL,
    job_id BINARY(16) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY idempotency_keys_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
