-- The audit sums the quantity of every active hold each pass; with qty in
-- this index the sum reads the index alone instead of one row per hold
-- (measured: 0.62 s -> 0.13 s for 288,000 active holds). The index still
-- serves "which products have overdue holds" as before.
ALTER TABLE holds
    DROP INDEX holds_expiry,
    ADD INDEX holds_expiry (status, expires_at, product_id, qty);
