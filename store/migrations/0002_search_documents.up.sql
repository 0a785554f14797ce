-- The PostgreSQL search backend (docs/architecture.md#search-document): one row per user, id = userId.
-- A row with `deleted` set is a tombstone, not a document: it keeps the version
-- at which the user disappeared so that a slower worker holding an older read
-- cannot bring the document back.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- array_to_string is only STABLE (it calls type output functions); for text[]
-- the result never changes, so this wrapper may be IMMUTABLE and feed a
-- generated column.
CREATE FUNCTION search_words(text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(array_to_string($1, ' '), '') $$;

CREATE TABLE search_documents (
    user_id        uuid PRIMARY KEY,
    version        bigint NOT NULL,
    content_hash   bytea,
    deleted        boolean NOT NULL DEFAULT false,
    full_name      text,
    headline       text,
    location       text,
    visibility     text,
    companies      text[] NOT NULL DEFAULT '{}',
    job_titles     text[] NOT NULL DEFAULT '{}',
    schools        text[] NOT NULL DEFAULT '{}',
    skills         text[] NOT NULL DEFAULT '{}',
    -- Normalised forms (casefolded, whitespace collapsed) for exact filters.
    companies_norm text[] NOT NULL DEFAULT '{}',
    skills_norm    text[] NOT NULL DEFAULT '{}',
    name_norm      text NOT NULL DEFAULT '',
    indexed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    search_vector  tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(full_name, '')), 'A')
        || setweight(to_tsvector('simple', coalesce(headline, '') || ' '
                                           || search_words(job_titles)), 'B')
        || setweight(to_tsvector('simple', search_words(companies) || ' '
                                           || search_words(skills) || ' '
                                           || search_words(schools)), 'C')
        || setweight(to_tsvector('simple', coalesce(location, '')), 'D')
    ) STORED
);

CREATE INDEX search_documents_vector_idx ON search_documents USING gin (search_vector);
CREATE INDEX search_documents_name_trgm_idx ON search_documents USING gin (name_norm gin_trgm_ops);
CREATE INDEX search_documents_skills_idx ON search_documents USING gin (skills_norm);
CREATE INDEX search_documents_companies_idx ON search_documents USING gin (companies_norm);
-- Rebuilds merge the rows written while they ran (see pipelines/search/rebuild.py).
CREATE INDEX search_documents_indexed_at_idx ON search_documents (indexed_at);
