DROP TRIGGER IF EXISTS notifications_source ON notifications;
DROP FUNCTION IF EXISTS notification_source();
DROP INDEX IF EXISTS connections_pending_by_addressee;
DROP INDEX IF EXISTS notifications_source_key;
ALTER TABLE notifications DROP COLUMN IF EXISTS source_id;
