"""The consent filter over Arrow data: PyArrow, Polars and DuckDB, each row held to
`Guard.check`; the PostgreSQL fragment; typed errors."""

import datetime as dt

import pyarrow as pa
import pytest

import consent_guard as cg
from conftest import NOW, require

TEMPLATE = {"purpose": "ai_training.model_training", "categories": ["behavior.log"]}
USERS = [f"user-{n}" for n in range(40)]


def history():
    events = []
    for n, user in enumerate(USERS):
        if n % 5 in (0, 1):
            events.append({"type": "grant", "subject": user, "purposes": ["ai_training"], "level": "explicit",
                           "at": "2026-01-05T00:00:00Z"})
        if n % 5 == 1:
            events.append({"type": "withdraw", "subject": user, "purposes": ["ai_training"],
                           "at": "2026-02-10T00:00:00Z"})
        if n % 5 == 2:
            events.append({"type": "erase", "subject": user, "at": "2026-02-01T00:00:00Z"})
    return events


def rows(count=1000):
    now = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    users, times = [], []
    for i in range(count):
        # A few unknown subjects, and times on both sides of the 30-day retention.
        users.append(USERS[i % len(USERS)] if i % 17 else f"stranger-{i}")
        times.append(now - dt.timedelta(days=(i * 7) % 60, seconds=i))
    return pa.table({"user_id": users, "ts": pa.array(times, pa.timestamp("ms", tz="UTC"))})


@pytest.fixture
def guard(filter_policy):
    guard = cg.Guard(filter_policy, now=NOW)
    for event in history():
        guard.record(event)
    return guard


def expected(guard, table):
    out = []
    for user, ts in zip(table.column("user_id").to_pylist(), table.column("ts").to_pylist()):
        request = dict(TEMPLATE, subject=user, collected_at=ts.isoformat().replace("+00:00", "Z"))
        decision = guard.check(request)
        out.append((decision.allowed, decision.code))
    return out


def test_the_mask_agrees_with_the_guard_on_every_row(guard):
    table = rows()
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    mask, counts = flt.mask(table)
    assert isinstance(mask, pa.BooleanArray)
    assert len(mask) == table.num_rows and mask.null_count == 0
    truth = expected(guard, table)
    assert mask.to_pylist() == [allowed for allowed, _ in truth]
    by_code = {}
    for _, code in truth:
        by_code[code] = by_code.get(code, 0) + 1
    assert counts == by_code
    assert 0 < sum(mask.to_pylist()) < table.num_rows


def test_record_batches_and_readers_are_accepted(guard):
    table = rows(300)
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    whole, _ = flt.mask(table)
    batch = table.to_batches(max_chunksize=1000)[0]
    assert flt.mask(batch)[0].to_pylist() == whole.to_pylist()
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=64))
    assert flt.mask(reader)[0].to_pylist() == whole.to_pylist()


def test_polars_and_duckdb_through_the_pycapsule_interface(guard):
    polars = require("polars")
    duckdb = require("duckdb")
    table = rows(500)
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    want = flt.mask(table)[0].to_pylist()
    frame = polars.from_arrow(table)
    assert flt.mask(frame)[0].to_pylist() == want
    con = duckdb.connect()
    con.register("logs", table)
    relation = con.sql("select user_id, ts from logs")
    assert flt.mask(relation)[0].to_pylist() == want


def test_large_and_view_string_columns(guard):
    table = rows(200)
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    want = flt.mask(table)[0].to_pylist()
    large = table.set_column(0, "user_id", table.column("user_id").cast(pa.large_string()))
    assert flt.mask(large)[0].to_pylist() == want


def test_an_opt_out_rule_allows_unknown_subjects(guard):
    table = pa.table({"user_id": ["nobody", "user-2"]})
    flt = guard.filter({"purpose": "service.notifications", "categories": ["behavior.log"]}, "user_id")
    mask, counts = flt.mask(table)
    assert mask.to_pylist() == [True, False]  # user-2 was erased
    assert counts.get("subject_erased") == 1


def test_typed_errors(guard):
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    with pytest.raises(cg.FilterError, match="user_id"):
        flt.mask(pa.table({"someone": ["a"]}))
    with pytest.raises(TypeError):
        flt.mask([1, 2, 3])
    with pytest.raises(cg.RequestError):
        guard.filter(dict(TEMPLATE, subject="u1"), "user_id")
    with pytest.raises(cg.RequestError):
        guard.filter({"purpose": "no_such", "categories": ["behavior.log"]}, "user_id")
    with pytest.raises(cg.FilterError):
        # The training rule limits retention: the filter needs the collection time.
        guard.filter(TEMPLATE, "user_id")


def test_the_postgres_fragment_is_parameterised(guard):
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    text, params = flt.where_sql("logs", "consent_snapshot")
    assert "$1" in text and '"consent_snapshot"' in text
    assert params and all(isinstance(p, (int, str)) for p in params)
    assert "2026" not in text, "values are parameters, never interpolated"
    with pytest.raises(ValueError):
        flt.where_sql("logs", "consent_snapshot", subject_type="uuid")


def test_the_snapshot_exports_with_its_watermark(guard):
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    snapshot = flt.snapshot()
    assert isinstance(snapshot, pa.RecordBatch)
    # One row per subject the guard knows (those with events); the others get the
    # unknown subject's answer, kept in the metadata.
    assert snapshot.num_rows == len({e["subject"] for e in history()})
    assert "subject" in snapshot.schema.names
    assert snapshot.schema.metadata


def test_an_event_recorded_after_the_filter_is_seen(guard):
    flt = guard.filter(TEMPLATE, "user_id", collected_at="ts")
    table = pa.table({"user_id": ["user-0"], "ts": pa.array([dt.datetime(2026, 2, 20, tzinfo=dt.timezone.utc)],
                                                             pa.timestamp("ms", tz="UTC"))})
    assert flt.mask(table)[0].to_pylist() == [True]
    guard.record({"type": "withdraw", "subject": "user-0", "purposes": ["ai_training"], "at": "2026-02-25T00:00:00Z"})
    assert flt.mask(table)[0].to_pylist() == [False]
