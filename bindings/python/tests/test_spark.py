"""The consent filter on a real Spark in local mode (mapInArrow): every row the job
keeps or drops is held to `Guard.check`. Needs pyspark and Java 17; under CI a missing
Spark fails the test instead of skipping it."""

import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import conftest
import consent_guard as cg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

try:
    import pyspark  # noqa: F401

    import spark_training_set as example
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("pyspark is not installed (CI installs it)", allow_module_level=True)


def millis(table):
    """The `ts` column as UTC milliseconds (Spark writes it back without its zone)."""
    return table.column("ts").cast(pa.timestamp("ms")).cast(pa.int64()).to_pylist()


@pytest.fixture(scope="module")
def spark():
    session = example.spark_session()
    yield session
    session.stop()


def test_the_spark_training_set_holds_every_row_to_the_guard(spark, tmp_path):
    rows = 20_000
    logs = tmp_path / "logs.parquet"
    example.write_logs(logs, rows)
    events = example.history()
    example.build(spark, logs, tmp_path / "training-set", events)
    kept = pq.read_table(tmp_path / "training-set")

    guard = cg.Guard(cg.Policy.from_file(example.POLICY), now=example.NOW)
    for event in events:
        guard.record(event)
    table = pq.read_table(logs)
    expected = []
    for user, event, ts, ms in zip(*(table.column(c).to_pylist() for c in ("user_id", "event", "ts")), millis(table)):
        request = dict(example.TEMPLATE, subject=user, collected_at=ts.isoformat().replace("+00:00", "Z"))
        if guard.check(request).allowed:
            expected.append((user, event, ms))
    got = list(zip(kept.column("user_id").to_pylist(), kept.column("event").to_pylist(), millis(kept)))
    assert sorted(got) == sorted(expected)
    assert 0 < len(expected) < rows


def test_the_broadcast_semi_join_keeps_exactly_the_rows_the_guard_allows(spark, tmp_path):
    """The semi-join form, row by row against `Guard.check`, and equal to the
    mapInArrow form on the same rows."""
    rows = 20_000
    logs_path = tmp_path / "logs.parquet"
    example.write_logs(logs_path, rows)
    events = example.history()
    example.build(spark, logs_path, tmp_path / "mapped", events)
    spec = example.driver_filter(events).join_spec()
    logs = spark.read.parquet(str(logs_path))
    example.semi_join(spark, logs, spec, job_at_ms=spec["at_ms"]).write.mode("overwrite").parquet(
        str(tmp_path / "joined"))
    joined, mapped = pq.read_table(tmp_path / "joined"), pq.read_table(tmp_path / "mapped")

    guard = cg.Guard(cg.Policy.from_file(example.POLICY), now=example.NOW)
    for event in events:
        guard.record(event)
    table = pq.read_table(logs_path)
    expected = []
    for user, event, ts, ms in zip(*(table.column(c).to_pylist() for c in ("user_id", "event", "ts")), millis(table)):
        request = dict(example.TEMPLATE, subject=user, collected_at=ts.isoformat().replace("+00:00", "Z"))
        if guard.check(request).allowed:
            expected.append((user, event, ms))

    def rows_of(t):
        return sorted(zip(t.column("user_id").to_pylist(), t.column("event").to_pylist(), millis(t)))

    assert rows_of(joined) == sorted(expected) == rows_of(mapped)
    assert 0 < len(expected) < rows


def test_the_semi_join_holds_retention_row_by_row(spark, tmp_path, filter_policy):
    """A rule with a retention limit (30 days): the row test is a column expression on
    `ts`; every row is held to `Guard.check` with its collection time, and rows without
    a time or a subject to `Filter.mask`."""
    import datetime as dt
    import random

    rng = random.Random(2626)
    guard = cg.Guard(filter_policy, now=conftest.NOW)
    users = [f"user-{n}" for n in range(200)]
    for n, user in enumerate(users):
        if n % 2:
            guard.record({"type": "grant", "subject": user, "purposes": ["ai_training"], "level": "explicit",
                          "at": "2026-01-02T00:00:00Z"})
        if n % 11 == 0:
            guard.record({"type": "withdraw", "subject": user, "purposes": ["ai_training"],
                          "at": "2026-02-01T00:00:00Z"})
        if n % 13 == 0:
            guard.record({"type": "erase", "subject": user, "at": "2026-02-15T00:00:00Z"})
    template = {"purpose": "ai_training.model_training", "categories": ["behavior.log"]}
    flt = guard.filter(template, "user_id", collected_at="ts", max_staleness_seconds=3600)
    spec = flt.join_spec()
    assert spec["row_test"] == "collected_within" and spec["column"] == "ts"
    t = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    times = [t - dt.timedelta(milliseconds=rng.randrange(-3 * 86_400_000, 45 * 86_400_000)) for _ in range(4_000)]
    # The window's edges, to the millisecond.
    times += [t - dt.timedelta(days=30), t - dt.timedelta(days=30, milliseconds=1), t,
              t + dt.timedelta(milliseconds=1)]
    table = pa.table({
        "user_id": [rng.choice(users + ["stranger"]) for _ in times],
        "ts": pa.array(times, pa.timestamp("ms", tz="UTC")),
    })
    with_nulls = pa.concat_tables([table, pa.table({
        "user_id": pa.array(["user-1", None, "user-3"], pa.string()),
        "ts": pa.array([None, t, None], pa.timestamp("ms", tz="UTC")),
    })])
    logs, expected = _joined_as_the_guard_and_the_mask_answer(spark, tmp_path, guard, flt, spec, template, table,
                                                                 with_nulls)
    assert 100 < len(expected) < len(times) // 2
    # Rows that age out of retention between T and the job's time are dropped: a job
    # a year later keeps nothing.
    year_later = spec["at_ms"] + 366 * 86_400_000
    assert example.semi_join(spark, logs, spec, job_at_ms=year_later).count() == 0


# The root's end-of-purpose policy (tests/data/filter/ends.toml), shared with the Rust
# filter tests.
ENDS_POLICY = conftest.ROOT / "tests" / "data" / "filter" / "ends.toml"


def test_the_semi_join_holds_ends_of_the_purpose_row_by_row(spark, tmp_path):
    """Ends of the purpose (issue 29) whose grace has run out: rows collected up to a
    subject's latest such end are denied, later ones answered as before. Every row is
    held to `Guard.check` and to `Filter.mask`, the rows on both sides of each cutoff to
    the millisecond."""
    import datetime as dt
    import random

    rng = random.Random(2929)
    guard = cg.Guard(cg.Policy.from_file(ENDS_POLICY), now=conftest.NOW)
    t = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    users = [f"user-{n}" for n in range(120)]
    ends = {}
    for n, user in enumerate(users):
        guard.record({"type": "grant", "subject": user, "purposes": ["ai_training"], "level": "explicit",
                      "at": "2026-01-02T00:00:00Z"})
        if n % 3 == 0:
            # Some ends are past their 7-day grace at T, some are not yet.
            end = t - dt.timedelta(days=rng.choice([2, 9, 12, 20]), milliseconds=rng.randrange(86_400_000))
            guard.record({"type": "end", "subject": user, "purposes": ["ai_training"],
                          "at": end.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
            ends[user] = end
    template = {"purpose": "ai_training.model_training", "categories": ["behavior.log"]}
    flt = guard.filter(template, "user_id", collected_at="ts", max_staleness_seconds=3600)
    spec = flt.join_spec()
    assert spec["collected_column"] == "ts"
    assert pa.Table.from_batches([spec["snapshot"]]).column("ended_through_ms").null_count < len(users)
    rows_user, rows_ts = [], []
    for _ in range(3_000):
        rows_user.append(rng.choice(users + ["stranger"]))
        rows_ts.append(t - dt.timedelta(milliseconds=rng.randrange(-86_400_000, 35 * 86_400_000)))
    for user, end in ends.items():
        for delta in (-1, 0, 1):
            rows_user.append(user)
            rows_ts.append(end + dt.timedelta(milliseconds=delta))
    table = pa.table({"user_id": rows_user, "ts": pa.array(rows_ts, pa.timestamp("ms", tz="UTC"))})
    with_nulls = pa.concat_tables([table, pa.table({
        "user_id": pa.array(list(ends)[:2], pa.string()),
        "ts": pa.array([None, None], pa.timestamp("ms", tz="UTC")),
    })])
    _, expected = _joined_as_the_guard_and_the_mask_answer(spark, tmp_path, guard, flt, spec, template, table,
                                                                 with_nulls)
    # Both sides of some cutoff are present: some rows of ended subjects kept, some not.
    ended_rows = [(u, ms) for u, ms in zip(table.column("user_id").to_pylist(), millis(table)) if u in ends]
    kept = set(expected)
    assert any(r in kept for r in ended_rows) and any(r not in kept for r in ended_rows)


def _joined_as_the_guard_and_the_mask_answer(spark, tmp_path, guard, flt, spec, template, table, with_nulls):
    """Runs the semi-join of `flt` (its `join_spec()`, `spec`) at its T over
    `with_nulls` (the rows of `table`, and rows without a subject or a time) and asserts it keeps exactly the rows of `table`
    `Guard.check` allows, and exactly what `Filter.mask` keeps of `with_nulls`; returns
    the Spark frame of the rows and the allowed (user, ms) pairs."""
    path = tmp_path / "rows.parquet"
    pq.write_table(with_nulls, path)
    logs = spark.read.parquet(str(path))
    joined = pq.read_table(_written(example.semi_join(spark, logs, spec, job_at_ms=spec["at_ms"]), tmp_path / "j"))
    expected = []
    for user, ts, ms in zip(table.column("user_id").to_pylist(), table.column("ts").to_pylist(), millis(table)):
        request = dict(template, subject=user, collected_at=ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        if guard.check(request).allowed:
            expected.append((user, ms))
    mask, _ = flt.mask(with_nulls)
    masked = with_nulls.filter(mask)
    got = sorted(zip(joined.column("user_id").to_pylist(), millis(joined)))
    assert got == sorted(expected) == sorted(zip(masked.column("user_id").to_pylist(), millis(masked)))
    return logs, expected


def _written(frame, path):
    frame.write.mode("overwrite").parquet(str(path))
    return path


def test_the_semi_join_fails_closed_where_it_cannot_answer(spark, tmp_path):
    """Ends by the clock (`until_ms`) cut a subject's rows once the job's time reaches
    them; a policy that allows subjects without consent state is refused."""
    import datetime as dt

    policy = cg.Policy.from_file(example.POLICY)
    guard = cg.Guard(policy, now=example.NOW)
    guard.record({"type": "grant", "subject": "user-1", "purposes": ["ai_training"], "level": "separate",
                  "at": "2026-01-05T00:00:00Z", "expires_at": "2026-03-02T00:00:00Z"})
    guard.record({"type": "grant", "subject": "user-2", "purposes": ["ai_training"], "level": "separate",
                  "at": "2026-01-05T00:00:00Z"})
    spec = guard.filter(example.TEMPLATE, "user_id", collected_at="ts").join_spec()
    at = dt.datetime(2026, 2, 28, tzinfo=dt.timezone.utc)
    table = pa.table({"user_id": ["user-1", "user-2", "user-3", None],
                      "ts": pa.array([at] * 4, pa.timestamp("ms", tz="UTC"))})
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    logs = spark.read.parquet(str(path))
    kept = example.semi_join(spark, logs, spec, job_at_ms=spec["at_ms"]).select("user_id").collect()
    assert sorted(r.user_id for r in kept) == ["user-1", "user-2"]
    for user in ("user-1", "user-2"):
        assert guard.check({**example.TEMPLATE, "subject": user, "collected_at": "2026-02-28T00:00:00Z"}).allowed
    after_expiry = spec["at_ms"] + 2 * 86_400_000
    kept = example.semi_join(spark, logs, spec, job_at_ms=after_expiry).select("user_id").collect()
    assert [r.user_id for r in kept] == ["user-2"]

    opt_out = cg.Policy.from_toml(
        '[policy]\nname = "o"\nversion = "1"\nhome_region = "CN"\nstorage_regions = ["CN"]\n\n[[rule]]\n'
        'id = "n"\npurposes = ["service.notifications"]\nbasis = "consent"\nlevel = "implied"\n'
        'default = "opt_out"\ncategories = ["behavior"]\n', file="o.toml")
    spec = cg.Guard(opt_out, now=example.NOW).filter(
        {"purpose": "service.notifications", "categories": ["behavior.log"]}, "user_id").join_spec()
    assert spec["unknown_fresh_allowed"]
    with pytest.raises(ValueError, match="mapInArrow"):
        example.semi_join(spark, logs, spec)
