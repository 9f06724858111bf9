-- The admin overview sums each product's ordered units by status every
-- second on every api replica; with qty in this index the sums read the
-- index alone instead of one row per order (as holds_expiry does for
-- active holds, 0009). The key still serves every lookup by product and
-- status it served before.
ALTER TABLE orders
    DROP INDEX orders_product_status,
    ADD INDEX orders_product_status (product_id, status, qty);
