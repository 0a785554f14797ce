-- The whole data model (docs/architecture.md#tables). Columns beyond the contract are
-- nullable or defaulted, so rows naming only contract columns insert cleanly.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL UNIQUE,
    password_hash text,
    mfa_secret    text,
    date_of_birth date,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One sequence orders every profile-related write, so a search document's
-- version only grows with its source, whichever table changed.
CREATE SEQUENCE profile_version_seq;

CREATE TABLE user_profiles (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    full_name  text NOT NULL DEFAULT '',
    headline   text,
    location   text,
    visibility text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version    bigint NOT NULL DEFAULT nextval('profile_version_seq')
);

CREATE TABLE work_experiences (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    company_name text NOT NULL,
    title        text NOT NULL,
    start_date   date,
    end_date     date,
    CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)
);
CREATE INDEX work_experiences_user_idx ON work_experiences (user_id);

CREATE TABLE educations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    school_name text NOT NULL,
    degree      text,
    start_date  date,
    end_date    date
);
CREATE INDEX educations_user_idx ON educations (user_id);

CREATE TABLE skills (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    skill_name text NOT NULL
);
CREATE INDEX skills_user_idx ON skills (user_id);

CREATE FUNCTION bump_profile_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'user_profiles' THEN
        NEW.version := nextval('profile_version_seq');
        RETURN NEW;
    END IF;
    UPDATE user_profiles SET version = nextval('profile_version_seq'), updated_at = now()
     WHERE user_id = CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    IF TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        UPDATE user_profiles SET version = nextval('profile_version_seq'), updated_at = now()
         WHERE user_id = OLD.user_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER user_profiles_version BEFORE UPDATE ON user_profiles
    FOR EACH ROW EXECUTE FUNCTION bump_profile_version();
CREATE TRIGGER work_experiences_version AFTER INSERT OR UPDATE OR DELETE ON work_experiences
    FOR EACH ROW EXECUTE FUNCTION bump_profile_version();
CREATE TRIGGER educations_version AFTER INSERT OR UPDATE OR DELETE ON educations
    FOR EACH ROW EXECUTE FUNCTION bump_profile_version();
CREATE TRIGGER skills_version AFTER INSERT OR UPDATE OR DELETE ON skills
    FOR EACH ROW EXECUTE FUNCTION bump_profile_version();

CREATE TABLE connections (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    requester_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    addressee_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'accepted', 'declined')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    responded_at timestamptz,
    CHECK (requester_id <> addressee_id)
);
-- Accepted connections of a user, read in both directions by keyset pages.
CREATE INDEX connections_accepted_by_requester
    ON connections (requester_id, addressee_id) WHERE status = 'accepted';
CREATE INDEX connections_accepted_by_addressee
    ON connections (addressee_id, requester_id) WHERE status = 'accepted';
-- At most one pending request per pair, whichever direction.
CREATE UNIQUE INDEX connections_one_pending_per_pair
    ON connections (LEAST(requester_id, addressee_id), GREATEST(requester_id, addressee_id))
    WHERE status = 'pending';

CREATE TABLE posts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text_content text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_author_created_idx ON posts (author_id, created_at DESC, id DESC);

CREATE TABLE comments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id      uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text_content text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_post_idx ON comments (post_id, created_at);

CREATE TABLE messages (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sender_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_pair_idx
    ON messages (LEAST(sender_id, recipient_id), GREATEST(sender_id, recipient_id), created_at);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id   uuid NOT NULL UNIQUE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    actor_id   uuid,
    subject_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC);

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    event_type    text NOT NULL,
    aggregate_key text NOT NULL,
    body          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
