-- consent-guard schema version 3: an erasure forgets the subject (issue 27).
--
-- - `consent_guard_subject_keys`: each subject's secret key (32 bytes), found by the
--   subject's locator (16 bytes: HMAC-SHA256 of the id under the master key, computed
--   by the store in Rust). The audit log writes pseudonyms under these keys.
-- - `consent_guard_tombstones`: what is left of an erased subject: its locator, when it
--   was erased, and the position the erase took in the event sequence (the events table
--   has no row there: the erase event itself would hold the id).
-- - `consent_guard_master_key`: the master key, kept here only when the application
--   configures none (see docs/erasure.md: configure one and keep it elsewhere).
-- - An erase now deletes the subject's earlier events, its key, and writes a
--   tombstone, in the append's transaction. Rows already erased under schema version 2
--   are converted by the store when it connects (it alone knows the master key).

CREATE TABLE IF NOT EXISTS consent_guard_subject_keys (
    locator    bytea       PRIMARY KEY CHECK (octet_length(locator) = 16),
    key        bytea       NOT NULL CHECK (octet_length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS consent_guard_tombstones (
    position     bigint      PRIMARY KEY,
    locator      bytea       NOT NULL CHECK (octet_length(locator) = 16),
    erased_at_ms bigint      NOT NULL,
    appended_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS consent_guard_tombstones_locator ON consent_guard_tombstones (locator);

-- The erase rows still stored with their ids (written before V3, or by a replica still
-- on the version-2 function during a rolling upgrade): what a store converts when it
-- connects. Empty once converted, so the search costs nothing then.
CREATE INDEX IF NOT EXISTS consent_guard_events_erase ON consent_guard_events (position)
    WHERE event->>'type' = 'erase';

CREATE TABLE IF NOT EXISTS consent_guard_master_key (
    id  integer PRIMARY KEY CHECK (id = 1),
    key bytea   NOT NULL CHECK (octet_length(key) = 32)
);

-- Append-only, but for the erasure: the rows of the subject an append is erasing
-- (named by the transaction-local setting `consent_guard.erasing`) may be deleted.
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
    IF TG_OP = 'DELETE' AND current_setting('consent_guard.erasing', true) = OLD.subject THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'consent_guard_events is append-only: % refused', TG_OP;
END
$$;

-- `consent_guard_append(subjects, events, locators, erased_at_ms)`: as version 2, except
-- that an erase (a non-null `erased_at_ms[i]`) takes its position in the sequence
-- without a row: it deletes the subject's events before it and its key, and writes a
-- tombstone under `locators[i]`.
CREATE OR REPLACE FUNCTION consent_guard_append(subjects text[], events text[], locators bytea[], erased_at_ms bigint[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(array_length(subjects, 1), 0);
    positions bigint[];
BEGIN
    IF n = 0 OR n <> coalesce(array_length(events, 1), 0) OR n <> coalesce(array_length(locators, 1), 0)
        OR n <> coalesce(array_length(erased_at_ms, 1), 0) THEN
        RAISE EXCEPTION 'consent_guard_append: % subjects for % events', n, coalesce(array_length(events, 1), 0);
    END IF;
    PERFORM pg_advisory_xact_lock(7162743646157368948);
    SELECT array_agg(drawn.p ORDER BY drawn.p) INTO positions
        FROM (SELECT nextval(pg_get_serial_sequence('consent_guard_events', 'position')) AS p
              FROM generate_series(1, n)) AS drawn;
    FOR i IN 1..n LOOP
        IF erased_at_ms[i] IS NULL THEN
            INSERT INTO consent_guard_events (position, subject, event)
                VALUES (positions[i], subjects[i], events[i]::jsonb);
        ELSE
            PERFORM set_config('consent_guard.erasing', subjects[i], true);
            DELETE FROM consent_guard_events WHERE subject = subjects[i] AND position < positions[i];
            PERFORM set_config('consent_guard.erasing', '', true);
            DELETE FROM consent_guard_subject_keys WHERE locator = locators[i];
            INSERT INTO consent_guard_tombstones (position, locator, erased_at_ms)
                VALUES (positions[i], locators[i], erased_at_ms[i]);
        END IF;
    END LOOP;
    PERFORM pg_notify('consent_guard_events', positions[n]::text);
    RETURN positions[n];
END
$$;
