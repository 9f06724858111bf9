-- A hold's id is the id of the job that created it.
-- holds_expiry serves the scheduler's "which products have overdue holds";
-- holds_product_expiry serves the worker's per-product sweep.
CREATE TABLE IF NOT EXISTS holds (
    id BINARY(16) NOT NULL PRIMARY KEY,
    product_id BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    unit_price BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    expires_at DATETIME(3) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY holds_expiry (status, expires_at, product_id),
    KEY holds_product_expiry (product_id, status, expires_at),
    CONSTRAINT holds_qty_positive CHECK (qty > 0),
    CONSTRAINT holds_product_fk FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT holds_status_valid CHECK (status IN ('active', 'used', 'expired'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
