-- Back to one pending row per pair. Rows the up migration declined stay declined:
-- which of them were duplicates is not recorded.
DROP INDEX IF EXISTS connections_one_live_per_pair;
CREATE UNIQUE INDEX IF NOT EXISTS connections_one_pending_per_pair
    ON connections (LEAST(requester_id, addressee_id), GREATEST(requester_id, addressee_id))
    WHERE status = 'pending';
