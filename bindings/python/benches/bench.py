"""Benchmarks of the Python binding, each beside its native baseline in the same run
(the machine is noisy: report the ratios).

- check: `Guard.check` from Python (a `str` request, and a dict), a prepared check
  (`Guard.prepare(template).check(subject)`) and a batch (`check_many`, per subject)
  against the same check in Rust with no Python in between
  (`Guard._native_check_seconds`). Target: at most 1 µs over the Rust check.
- mask: `Filter.mask` over a 1,000,000-row PyArrow table (import through the
  PyCapsule interface, refresh, kernel, audit, export) against the Rust kernel over the
  same batches (`Filter._native_mask_seconds`). Target: at most 1.5x per row.

    python bindings/python/benches/bench.py      # with the wheel built --release
"""

import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

import pyarrow as pa

import consent_guard as cg

ROOT = Path(__file__).resolve().parents[3]
NOW = "2026-03-01T00:00:00Z"
REPEATS = 7


def best(samples):
    return min(samples), statistics.median(samples)


def bench_check():
    guard = cg.Guard(cg.Policy.from_file(ROOT / "examples" / "policies" / "exmo.toml"), now=NOW)
    guard.record({"type": "grant", "subject": "u1", "purposes": ["ai_training"], "level": "separate",
                  "at": "2026-01-02T00:00:00Z"})
    request = {"subject": "u1", "purpose": "ai_training.model_training", "categories": ["behavior.log"],
               "deidentification": "anonymized"}
    text = json.dumps(request)
    assert guard.check(text).allowed
    template = {k: v for k, v in request.items() if k != "subject"}
    prepared = guard.prepare(template)
    assert prepared.check("u1").allowed and prepared.check_many(["u1"]) == [True]
    batch = ["u1"] * 10_000
    n = 200_000
    native, from_str, from_dict, from_prepared, from_allows, from_batch = [], [], [], [], [], []
    for _ in range(REPEATS):
        native.append(guard._native_check_seconds(text, n) / n)
        started = time.perf_counter()
        for _ in range(n):
            guard.check(text)
        from_str.append((time.perf_counter() - started) / n)
        started = time.perf_counter()
        for _ in range(n // 4):
            guard.check(request)
        from_dict.append((time.perf_counter() - started) / (n // 4))
        started = time.perf_counter()
        for _ in range(n):
            prepared.check("u1")
        from_prepared.append((time.perf_counter() - started) / n)
        started = time.perf_counter()
        for _ in range(n):
            prepared.allows("u1")
        from_allows.append((time.perf_counter() - started) / n)
        started = time.perf_counter()
        for _ in range(n // len(batch)):
            prepared.check_many(batch)
        from_batch.append((time.perf_counter() - started) / n)
    (native_best, native_median), (str_best, str_median), (dict_best, dict_median) = (
        best(native), best(from_str), best(from_dict))
    print(f"check  native (parsed request, Rust loop) {native_best * 1e9:8.0f} ns  (median {native_median * 1e9:.0f})")
    print(f"check  Python, str request                {str_best * 1e9:8.0f} ns  (median {str_median * 1e9:.0f})"
          f"  overhead {(str_best - native_best) * 1e9:.0f} ns  ratio {str_best / native_best:.2f}")
    print(f"check  Python, dict request               {dict_best * 1e9:8.0f} ns  (median {dict_median * 1e9:.0f})"
          f"  overhead {(dict_best - native_best) * 1e9:.0f} ns  ratio {dict_best / native_best:.2f}")
    (prep_best, prep_median), (batch_best, batch_median) = best(from_prepared), best(from_batch)
    print(f"check  Python, PreparedCheck.check(str)   {prep_best * 1e9:8.0f} ns  (median {prep_median * 1e9:.0f})"
          f"  overhead {(prep_best - native_best) * 1e9:.0f} ns  ratio {prep_best / native_best:.2f}")
    allows_best, allows_median = best(from_allows)
    print(f"check  Python, PreparedCheck.allows(str)  {allows_best * 1e9:8.0f} ns  (median {allows_median * 1e9:.0f})"
          f"  overhead {(allows_best - native_best) * 1e9:.0f} ns  ratio {allows_best / native_best:.2f}")
    print(f"check  Python, check_many (10,000/call)   {batch_best * 1e9:8.0f} ns  (median {batch_median * 1e9:.0f})"
          f"  per subject, ratio {batch_best / native_best:.2f}")


def bench_mask():
    policy = cg.Policy.from_file(ROOT / "examples" / "policies" / "exmo.toml")
    guard = cg.Guard(policy, now=NOW)
    users = 100_000
    for n in range(0, users, 3):
        guard.record({"type": "grant", "subject": f"user-{n}", "purposes": ["ai_training"], "level": "separate",
                      "at": "2026-01-05T00:00:00Z"})
    rows = 1_000_000
    start = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    table = pa.table({
        "user_id": [f"user-{(i * 7919) % users}" for i in range(rows)],
        "ts": pa.array([start + dt.timedelta(seconds=i % 2_000_000) for i in range(rows)],
                       pa.timestamp("ms", tz="UTC")),
    }).combine_chunks()
    flt = guard.filter({"purpose": "ai_training.model_training", "categories": ["behavior.log"],
                        "deidentification": "anonymized"}, "user_id", collected_at="ts",
                       max_staleness_seconds=3600)
    native, python = [], []
    for _ in range(REPEATS):
        native.append(flt._native_mask_seconds(table, 1) / rows)
        started = time.perf_counter()
        flt.mask(table)
        python.append((time.perf_counter() - started) / rows)
    (native_best, native_median), (python_best, python_median) = best(native), best(python)
    print(f"mask   native kernel, 1M rows             {native_best * 1e9:8.2f} ns/row  ({1 / native_best / 1e6:.0f} M rows/s)")
    print(f"mask   Filter.mask(pyarrow.Table), 1M rows {python_best * 1e9:7.2f} ns/row  ({1 / python_best / 1e6:.0f} M rows/s)"
          f"  ratio {python_best / native_best:.2f}")


if __name__ == "__main__":
    print(f"load average {os.getloadavg()}")
    bench_check()
    bench_mask()
    print(f"load average {os.getloadavg()}")
