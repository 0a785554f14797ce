-- A notification's source: the connection (connection_requested, connection_accepted)
-- or the comment (comment_created) it tells about. (kind, source_id) is the key the
-- live worker and `reconcile notifications` share: the worker dedupes by event id,
-- reconciliation knows no event ids, and neither may write a second row for one source.
ALTER TABLE notifications ADD COLUMN source_id uuid;

UPDATE notifications SET source_id = subject_id
 WHERE kind IN ('connection_requested', 'connection_accepted');
-- Comment rows name the post, not the comment: pair them with the comments of the
-- same author on the same post, oldest with oldest.
WITH r AS (
    SELECT id, actor_id, subject_id,
           row_number() OVER (PARTITION BY actor_id, subject_id ORDER BY created_at, id) AS nth
      FROM notifications WHERE kind = 'comment_created'
), c AS (
    SELECT id, author_id, post_id,
           row_number() OVER (PARTITION BY author_id, post_id ORDER BY created_at, id) AS nth
      FROM comments
)
UPDATE notifications t SET source_id = c.id
  FROM r JOIN c ON c.author_id = r.actor_id AND c.post_id = r.subject_id AND c.nth = r.nth
 WHERE t.id = r.id;
-- Rows written twice for one source before the key existed keep the oldest as keyed.
UPDATE notifications t SET source_id = NULL
 WHERE source_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM notifications o
        WHERE o.kind = t.kind AND o.source_id = t.source_id
          AND (o.created_at, o.id) < (t.created_at, t.id));

CREATE UNIQUE INDEX notifications_source_key ON notifications (kind, source_id);
-- Reconciliation reads pending requests by addressee.
CREATE INDEX connections_pending_by_addressee ON connections (addressee_id) WHERE status = 'pending';

-- Every insert (the worker's, which names no source, and reconciliation's) goes
-- through this: it fills in the source and drops a row whose source already has one,
-- so the worker's `ON CONFLICT (event_id) DO NOTHING` insert respects the key without
-- naming it. A per-source advisory lock makes check-then-insert safe between writers.
CREATE FUNCTION notification_source() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    comment_id uuid;
BEGIN
    -- A redelivered event: its own ON CONFLICT (event_id) settles it.
    IF EXISTS (SELECT 1 FROM notifications WHERE event_id = NEW.event_id) THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(
        concat_ws(':', 'notification', NEW.kind, NEW.actor_id, NEW.subject_id), 0));
    IF NEW.source_id IS NULL AND NEW.kind = 'comment_created' THEN
        SELECT c.id INTO comment_id FROM comments c
         WHERE c.post_id = NEW.subject_id AND c.author_id = NEW.actor_id
           AND NOT EXISTS (SELECT 1 FROM notifications n
                            WHERE n.kind = 'comment_created' AND n.source_id = c.id)
         ORDER BY c.created_at, c.id LIMIT 1;
        IF comment_id IS NULL THEN
            -- Every comment of this author on this post is told already: a duplicate.
            -- No such comment at all (deleted since): written as before, without a key.
            IF EXISTS (SELECT 1 FROM comments c
                        WHERE c.post_id = NEW.subject_id AND c.author_id = NEW.actor_id) THEN
                RETURN NULL;
            END IF;
            RETURN NEW;
        END IF;
        NEW.source_id := comment_id;
    ELSIF NEW.source_id IS NULL AND NEW.kind IN ('connection_requested', 'connection_accepted') THEN
        NEW.source_id := NEW.subject_id;
    END IF;
    IF NEW.source_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM notifications n WHERE n.kind = NEW.kind AND n.source_id = NEW.source_id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER notifications_source BEFORE INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notification_source();
