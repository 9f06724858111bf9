-- Every stock change is a row here; products.stock = SUM(delta) (guarantee 2).
-- ref_id is the hold/order/job that caused the change, when there is one.
CREATE TABLE IF NOT EXISTS stock_ledger (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id BIGINT NOT NULL,
    delta BIGINT NOT NULL,
    reason VARCHAR(32) NOT NULL,
    ref_id BINARY(16) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY stock_ledger_product (product_id, id),
    CONSTRAINT stock_ledger_product_fk FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
