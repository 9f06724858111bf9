-- v1.1: buyers, per-customer limits and sale windows.
--
-- holds_customer and orders_customer serve the worker's per-customer limit
-- check (the buyer's units of one product), read inside the product's
-- locked transaction for every customer of a hold batch. They hold only
-- (customer_id, product_id), not the status: a status change (a hold used,
-- expired; an order paid, canceled) then leaves these indexes alone, so
-- they cost an insert per hold or order and nothing more; the check reads
-- the few rows of one buyer and product through them.
ALTER TABLE products
    ADD COLUMN max_per_customer BIGINT NULL,
    ADD COLUMN sale_starts_at DATETIME(3) NULL,
    ADD COLUMN sale_ends_at DATETIME(3) NULL,
    ADD CONSTRAINT products_limit_positive
        CHECK (max_per_customer IS NULL OR max_per_customer >= 1),
    ADD CONSTRAINT products_window_ordered
        CHECK (sale_starts_at IS NULL OR sale_ends_at IS NULL OR sale_ends_at > sale_starts_at);

ALTER TABLE holds
    ADD COLUMN customer_id VARCHAR(255) NULL,
    ADD INDEX holds_customer (customer_id, product_id);

ALTER TABLE orders
    ADD COLUMN customer_id VARCHAR(255) NULL,
    ADD INDEX orders_customer (customer_id, product_id);
