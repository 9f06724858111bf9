-- Webhook deliveries. id = the payment job id, derived from the provider's
-- idempotency_key, so a key is recorded (and applied) at most once
-- (guarantee 6). `state` is what became of the event; operators list the
-- unmatched / needs_refund / conflict ones.
CREATE TABLE IF NOT EXISTS payment_events (
    id BINARY(16) NOT NULL PRIMARY KEY,
    idempotency_key VARCHAR(255) NOT NULL,
    order_id BINARY(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    request_hash BINARY(32) NOT NULL,
    state VARCHAR(16) NOT NULL DEFAULT 'received',
    reason VARCHAR(255) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    processed_at DATETIME(3) NULL,
    UNIQUE KEY payment_events_key (idempotency_key),
    KEY payment_events_order (order_id),
    KEY payment_events_state (state, created_at),
    KEY payment_events_created (created_at),
    CONSTRAINT payment_events_status_valid CHECK (status IN ('success', 'failed')),
    CONSTRAINT payment_events_state_valid CHECK (state IN ('received', 'applied', 'duplicate', 'awaiting_order', 'needs_refund', 'ignored', 'unmatched', 'conflict'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
