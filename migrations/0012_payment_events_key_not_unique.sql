-- An event's id is UUIDv5(its idempotency_key), so the primary key already
-- keeps one row per key, byte for byte. This unique key compared keys under
-- utf8mb4_bin, a PAD SPACE collation: "k" and "k " collided, the insert of
-- the second failed with 1062, its own id had no row to replay, and the
-- webhook answered 500 to a valid delivery.
ALTER TABLE payment_events DROP INDEX payment_events_key;
