-- The waiting room: where a queued job waits, so the api can tell a client
-- its place without scanning the jobs table. `lane` is the hold's product,
-- or the order's partition (the queue its command goes to); NULL for
-- payments, which have no queue to show. jobs_lane (kind, lane, status),
-- with InnoDB's primary key `id` (a time-ordered UUIDv7) appended, lists a
-- lane's queued jobs in arrival order: one short range read per lane.
-- Rows recorded before this migration keep NULL and show no place.
ALTER TABLE jobs
    ADD COLUMN lane BIGINT NULL,
    ADD KEY jobs_lane (kind, lane, status);
