-- Poison outbox rows: the bus refusing a row (not being unreachable) is counted in
-- `refusals`; at the relay's limit the row is parked with its last error, out of the
-- pending set, until an operator requeues it.
ALTER TABLE outbox
    ADD COLUMN refusals   integer NOT NULL DEFAULT 0,
    ADD COLUMN parked_at  timestamptz,
    ADD COLUMN last_error text;

DROP INDEX outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked_idx ON outbox (id) WHERE parked_at IS NOT NULL;
