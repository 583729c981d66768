"""Builds an EXMO training set on Spark: behaviour logs in Parquet in, the rows the
policy allows out, counts by reason printed.

The guard runs inside Spark's own Python workers (``mapInArrow``): each worker builds
one guard from the broadcast policy and consent events, compiles the filter once, and
masks every Arrow batch it is handed. No row leaves a worker unless the guard allows
it, and each batch leaves one audit record (here: none configured).

    python bindings/python/examples/spark_training_set.py [ROWS] [OUT_DIR]

Needs ``pip install pyspark pyarrow consent_guard`` and Java 17.
"""

import collections
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "examples" / "policies" / "exmo.toml"
NOW = "2026-03-01T00:00:00Z"
USERS = 10_000
# Training on anonymized behaviour logs, as the seed words it.
TEMPLATE = {
    "purpose": "ai_training.model_training",
    "categories": ["behavior.log"],
    "deidentification": "anonymized",
}


def history(users=USERS):
    """Consent events: a third agreed, some withdrew, some erased their account."""
    events = []
    for n in range(users):
        user = f"user-{n}"
        if n % 3 == 0:
            events.append({"type": "grant", "subject": user, "purposes": ["ai_training"], "level": "separate",
                           "at": "2026-01-05T00:00:00Z"})
        if n % 15 == 0:
            events.append({"type": "withdraw", "subject": user, "purposes": ["ai_training"],
                           "at": "2026-02-10T00:00:00Z"})
        if n % 7 == 0:
            events.append({"type": "erase", "subject": user, "at": "2026-02-01T00:00:00Z"})
    return [json.dumps(e) for e in events]


def write_logs(path, rows):
    start = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    actions = ["task_created", "preference_set", "task_completed", "template_used"]
    table = pa.table({
        "user_id": [f"user-{(i * 7919) % USERS}" for i in range(rows)],
        "event": [actions[i % len(actions)] for i in range(rows)],
        "ts": pa.array([start + dt.timedelta(seconds=i % 2_000_000) for i in range(rows)],
                       pa.timestamp("ms", tz="UTC")),
    })
    pq.write_table(table, path, row_group_size=max(rows // 8, 1))


def consent_filter(policy_text, events, now):
    """What each Spark worker runs: one guard and one compiled filter per worker
    process, then a mask per Arrow batch."""
    cache = {}

    def apply(batches):
        import consent_guard as cg

        if "filter" not in cache:
            guard = cg.Guard(cg.Policy.from_toml(policy_text, file="exmo.toml"), now=now)
            for event in events:
                guard.record(event)
            cache["filter"] = guard.filter(TEMPLATE, "user_id", collected_at="ts")
        flt = cache["filter"]
        for batch in batches:
            mask, _ = flt.mask(batch)
            yield batch.filter(mask)

    return apply


def spark_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        SparkSession.builder.master("local[2]")
        .appName("consent-guard training set")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def build(spark, logs_path, out_path, events, now=NOW):
    """The training set: the logs the policy allows, written to `out_path`."""
    logs = spark.read.parquet(str(logs_path))
    policy_text = POLICY.read_text()
    shipped = spark.sparkContext.broadcast((policy_text, events))
    text, evts = shipped.value
    allowed = logs.mapInArrow(consent_filter(text, evts, now), logs.schema)
    allowed.write.mode("overwrite").parquet(str(out_path))
    return allowed


def semi_join(allowed_ids):
    """The baseline: the same job keeping the same rows with a precomputed set of
    allowed ids (`pyarrow.compute.is_in`), as a hand-written broadcast semi-join would;
    no guard, no row test."""

    def apply(batches):
        import pyarrow.compute as pc

        keep = pa.array(sorted(allowed_ids))
        for batch in batches:
            yield batch.filter(pc.is_in(batch.column("user_id"), value_set=keep))

    return apply


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="consent-guard-spark-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    logs_path = out_dir / "behaviour-logs.parquet"
    write_logs(logs_path, rows)
    spark = spark_session()
    events = history()

    # Counts by reason, and the allowed ids for the baseline, from the guard on the
    # driver (the same decisions).
    import consent_guard as cg

    guard = cg.Guard(cg.Policy.from_file(POLICY), now=NOW)
    for event in events:
        guard.record(event)
    table = pq.read_table(logs_path)
    mask, counts = guard.filter(TEMPLATE, "user_id", collected_at="ts").mask(table)
    allowed_ids = set(table.filter(mask).column("user_id").to_pylist())

    logs = spark.read.parquet(str(logs_path))
    # Warm the JVM and the Python workers once, so that neither timed job pays for it.
    logs.write.mode("overwrite").parquet(str(out_dir / "warm-up"))
    timings = {}
    for name, job in (("semi-join", semi_join(allowed_ids)), ("guard", None), ("semi-join again", semi_join(allowed_ids))):
        started = time.perf_counter()
        if job is None:
            build(spark, logs_path, out_dir / "training-set", events)
        else:
            logs.mapInArrow(job, logs.schema).write.mode("overwrite").parquet(str(out_dir / "baseline"))
        timings[name] = time.perf_counter() - started
    kept = spark.read.parquet(str(out_dir / "training-set")).count()
    assert kept == spark.read.parquet(str(out_dir / "baseline")).count() == sum(mask.to_pylist())
    print(f"{rows} rows in, {kept} allowed, written to {out_dir / 'training-set'}")
    for code, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {code:<28} {n:>9}")
    baseline = min(timings["semi-join"], timings["semi-join again"])
    print(
        f"the job with the guard {timings['guard']:.2f} s; the same job keeping the same rows by a "
        f"precomputed id set {baseline:.2f} s (best of two); overhead {timings['guard'] / baseline:.2f}x"
    )
    spark.stop()


if __name__ == "__main__":
    main()
