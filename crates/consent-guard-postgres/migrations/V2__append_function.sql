-- consent-guard schema version 2: an append is one statement.
--
-- `consent_guard_append(subjects, events)` appends a batch in the caller's transaction
-- (called alone, the statement's own): it takes the append lock, draws one position
-- per event, inserts the events, removes `birth_date` and `age` from the earlier
-- `subject` events of every subject the batch erases, notifies
-- `consent_guard_events` with the last position, and returns it. One round trip per
-- batch; the store coalesces concurrent appends into one batch (group commit).

CREATE OR REPLACE FUNCTION consent_guard_append(subjects text[], events text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(array_length(subjects, 1), 0);
    positions bigint[];
BEGIN
    IF n = 0 OR n <> coalesce(array_length(events, 1), 0) THEN
        RAISE EXCEPTION 'consent_guard_append: % subjects for % events', n, coalesce(array_length(events, 1), 0);
    END IF;
    -- Sequence values are drawn before commit, so without this lock a transaction
    -- holding position 7 could commit after one holding 8, and a reader that had seen 8
    -- would never look below it again. Held to the commit, it makes positions visible
    -- in order (the key is ASCII "cg-event", as in src/store/postgres.rs).
    PERFORM pg_advisory_xact_lock(7162743646157368948);
    SELECT array_agg(drawn.p ORDER BY drawn.p) INTO positions
        FROM (SELECT nextval(pg_get_serial_sequence('consent_guard_events', 'position')) AS p
              FROM generate_series(1, n)) AS drawn;
    INSERT INTO consent_guard_events (position, subject, event)
        SELECT batch.p, batch.s, batch.e::jsonb FROM unnest(positions, subjects, events) AS batch (p, s, e);
    FOR i IN 1..n LOOP
        IF (events[i]::jsonb)->>'type' = 'erase' THEN
            UPDATE consent_guard_events SET event = event - 'birth_date' - 'age'
                WHERE subject = subjects[i] AND position < positions[i]
                AND event->>'type' = 'subject' AND event ?| array['birth_date', 'age'];
        END IF;
    END LOOP;
    PERFORM pg_notify('consent_guard_events', positions[n]::text);
    RETURN positions[n];
END
$$;
