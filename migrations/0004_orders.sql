-- One order per hold, ever (guarantee 5): the unique key enforces it.
CREATE TABLE IF NOT EXISTS orders (
    id BINARY(16) NOT NULL PRIMARY KEY,
    hold_id BINARY(16) NOT NULL,
    product_id BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'pending',
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY orders_one_per_hold (hold_id),
    KEY orders_product_status (product_id, status),
    CONSTRAINT orders_hold_fk FOREIGN KEY (hold_id) REFERENCES holds (id),
    CONSTRAINT orders_product_fk FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT orders_status_valid CHECK (status IN ('pending', 'paid', 'canceled'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
