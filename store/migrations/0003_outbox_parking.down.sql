DROP INDEX IF EXISTS outbox_parked_idx;
DROP INDEX IF EXISTS outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
ALTER TABLE outbox
    DROP COLUMN IF EXISTS last_error,
    DROP COLUMN IF EXISTS parked_at,
    DROP COLUMN IF EXISTS refusals;
