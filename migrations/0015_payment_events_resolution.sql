-- An operator resolves an event that needed them (unmatched, needs_refund,
-- conflict): when, and what they did. `state` keeps what became of the
-- event; a resolved one leaves its state's list for the list of resolved
-- ones. payment_events_open (state, resolved_at, created_at) serves a
-- state's open events (resolved_at IS NULL) in arrival order with one range
-- read, as payment_events_state did; payment_events_resolved serves the
-- resolved ones in the order they were resolved.
ALTER TABLE payment_events
    ADD COLUMN resolved_at DATETIME(3) NULL,
    ADD COLUMN resolution_note VARCHAR(1000) NULL,
    ADD KEY payment_events_open (state, resolved_at, created_at),
    ADD KEY payment_events_resolved (resolved_at),
    DROP INDEX payment_events_state;
