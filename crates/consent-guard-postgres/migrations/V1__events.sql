-- consent-guard schema version 1: the append-only log of consent events.
--
-- Applied by `PostgresConsentStore::connect` in one transaction, under an advisory
-- lock, and recorded in `consent_guard_schema_version`; every statement is also safe
-- to run again.

CREATE TABLE IF NOT EXISTS consent_guard_events (
    -- 1 for the first event, then strictly increasing in commit order: appends take
    -- an advisory lock before drawing positions (see src/store/postgres.rs).
    position    bigserial   PRIMARY KEY,
    subject     text        NOT NULL,
    -- The event as interchange JSON (`interchange.md`).
    event       jsonb       NOT NULL,
    appended_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS consent_guard_events_subject ON consent_guard_events (subject, position);

-- Append-only: rows are never deleted, and the only update allowed is the one an
-- erase makes, removing `birth_date` and `age` from the subject's earlier events.
CREATE OR REPLACE FUNCTION consent_guard_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.position = OLD.position
        AND NEW.subject = OLD.subject
        AND NEW.appended_at = OLD.appended_at
        AND NEW.event = OLD.event - 'birth_date' - 'age' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent_guard_events is append-only: % refused', TG_OP;
END
$$;

DROP TRIGGER IF EXISTS consent_guard_events_append_only ON consent_guard_events;
CREATE TRIGGER consent_guard_events_append_only
    BEFORE UPDATE OR DELETE ON consent_guard_events
    FOR EACH ROW EXECUTE FUNCTION consent_guard_events_append_only();

DROP TRIGGER IF EXISTS consent_guard_events_no_truncate ON consent_guard_events;
CREATE TRIGGER consent_guard_events_no_truncate
    BEFORE TRUNCATE ON consent_guard_events
    FOR EACH STATEMENT EXECUTE FUNCTION consent_guard_events_append_only();
