-- One relationship per pair of users, whichever direction it was asked in: at most
-- one row per unordered pair is live (pending or accepted). Declined rows are history
-- and do not count, so a pair may ask again after a decline.
--
-- Before this, only pending rows were unique per pair, so an accept racing a new
-- request in the other direction could leave an accepted and a pending row, and
-- accepting that one too gave the pair two accepted rows. Such duplicates are
-- settled deterministically before the index is built: per pair the accepted row
-- is kept before a pending one, then the oldest (created_at, then id); every other
-- live row becomes declined (responded_at kept if set, else now()). Who is
-- connected to whom does not change: a pair with an accepted row keeps one.
WITH ranked AS (
    SELECT id,
           row_number() OVER (
               PARTITION BY LEAST(requester_id, addressee_id), GREATEST(requester_id, addressee_id)
               ORDER BY status = 'accepted' DESC, created_at, id) AS nth
      FROM connections
     WHERE status IN ('pending', 'accepted')
)
UPDATE connections c
   SET status = 'declined', responded_at = COALESCE(c.responded_at, now())
  FROM ranked r
 WHERE c.id = r.id AND r.nth > 1;

DROP INDEX connections_one_pending_per_pair;
CREATE UNIQUE INDEX connections_one_live_per_pair
    ON connections (LEAST(requester_id, addressee_id), GREATEST(requester_id, addressee_id))
    WHERE status IN ('pending', 'accepted');
