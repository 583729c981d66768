"""Prepared checks and batches (`Guard.prepare`, `PreparedCheck.check`, `check_many`)
held to `Guard.check` of the full request, and the dict reader held to the JSON one."""

import copy
import json
import random
import re

import pytest

import consent_guard as cg
from conftest import GOLDEN, NOW, POLICIES, SEEDS, require

TEMPLATE = {"purpose": "ai_training.model_training", "categories": ["behavior.log"], "deidentification": "anonymized"}


def golden(seed):
    """The seed's golden file: a guard at its time with its events recorded, and its cases."""
    tomllib = require("tomllib")
    data = tomllib.loads((GOLDEN / f"{seed}.toml").read_text())
    guard = cg.Guard(cg.Policy.from_file(POLICIES / f"{seed}.toml"), now=data["at"])
    for line in data["events"].splitlines():
        if line.strip():
            guard.record(line)
    return guard, data["case"]


def same(a, b):
    return (a.allowed, a.code, a.clause, a.policy_version, a.basis, a.explain()) == (
        b.allowed, b.code, b.clause, b.policy_version, b.basis, b.explain())


@pytest.mark.parametrize("seed", SEEDS)
def test_prepared_answers_equal_guard_check_on_the_golden_workload(seed):
    guard, cases = golden(seed)
    prepared_cases = 0
    for case in cases:
        request = case["request"]
        if "at" in request:
            # A what-if: a prepared check refuses a template with its own time.
            template = {k: v for k, v in request.items() if k != "subject"}
            with pytest.raises(cg.RequestError) as raised:
                guard.prepare(template)
            assert raised.value.field == "at"
            continue
        template = {k: v for k, v in request.items() if k != "subject"}
        prepared = guard.prepare(template)
        full = guard.check(request)
        assert (full.allowed, full.code, full.clause) == (case["allowed"], case["code"], case["clause"]), case["name"]
        assert same(prepared.check(request["subject"]), full), case["name"]
        assert prepared.allows(request["subject"]) == full.allowed, case["name"]
        assert prepared.check_many([request["subject"]]) == [full.allowed]
        assert prepared.check_many([request["subject"]], codes=True) == [full.code]
        assert guard.check_many(json.dumps(template), (request["subject"],), codes=True) == [full.code]
        prepared_cases += 1
    assert prepared_cases >= 10


@pytest.mark.parametrize("seed", SEEDS)
def test_batches_equal_guard_check_for_every_subject_and_template(seed):
    """Every template of the golden file against every subject it names, in one batch."""
    guard, cases = golden(seed)
    subjects = sorted({case["request"]["subject"] for case in cases}) + ["nobody"]
    templates = {json.dumps({k: v for k, v in case["request"].items() if k != "subject"}, sort_keys=True)
                 for case in cases if "at" not in case["request"]}
    for text in sorted(templates):
        template = json.loads(text)
        expected = [guard.check({**template, "subject": s}) for s in subjects]
        prepared = guard.prepare(template)
        assert prepared.check_many(subjects, codes=True) == [d.code for d in expected], text
        assert prepared.check_many(subjects) == [d.allowed for d in expected], text
        for subject, decision in zip(subjects, expected):
            assert same(prepared.check(subject), decision), (text, subject)
            assert prepared.allows(subject) == decision.allowed, (text, subject)


def test_random_requests_prepared_and_batched_equal_guard_check(exmo):
    rng = random.Random(2626)
    guard = cg.Guard(exmo, now="2026-06-01T00:00:00Z")
    purposes = ["ai_training", "ai_training.model_training", "advertising", "personalization", "profiling"]
    levels = ["implied", "explicit", "separate"]
    subjects = [f"s{i}" for i in range(60)]
    for subject in subjects:
        for _ in range(rng.randint(0, 3)):
            guard.record({"type": "grant", "subject": subject, "purposes": [rng.choice(purposes)],
                          "level": rng.choice(levels), "at": "2026-01-02T00:00:00Z"})
        if rng.random() < 0.2:
            guard.record({"type": "withdraw", "subject": subject, "purposes": [rng.choice(purposes)],
                          "at": "2026-02-01T00:00:00Z"})
    request_purposes = ["ai_training.model_training", "advertising.personalized", "personalization.recommendation",
                        "profiling.user_profile"]
    categories = ["behavior.log", "behavior.generation_log", "device.identifier"]
    checked = 0
    for _ in range(40):
        template = {"purpose": rng.choice(request_purposes), "categories": [rng.choice(categories)]}
        if rng.random() < 0.5:
            template["deidentification"] = rng.choice(["none", "pseudonymized", "anonymized"])
        try:
            prepared = guard.prepare(template)
        except cg.RequestError as error:
            with pytest.raises(cg.RequestError) as raised:
                guard.check({**template, "subject": "s0"})
            assert str(raised.value) == str(error)
            continue
        batch = rng.sample(subjects, 30) + ["unknown"]
        expected = [guard.check({**template, "subject": s}) for s in batch]
        assert prepared.check_many(batch, codes=True) == [d.code for d in expected]
        assert all(same(prepared.check(s), d) for s, d in zip(batch, expected))
        checked += 1
    assert checked >= 20


def test_a_prepared_check_sees_consent_recorded_after_it_was_prepared(exmo):
    guard = cg.Guard(exmo, now="2026-06-01T00:00:00Z")
    prepared = guard.prepare(TEMPLATE)
    assert prepared.check_many(["u1"]) == [False]
    guard.record({"type": "grant", "subject": "u1", "purposes": ["ai_training"], "level": "separate",
                  "at": "2026-01-02T00:00:00Z"})
    assert prepared.check("u1").allowed and prepared.check_many(["u1", "u2"]) == [True, False]
    del guard  # the prepared check keeps the guard alive
    assert prepared.check("u1").code == "consent_given"


def test_bad_templates_and_subjects_raise_with_the_readers_words(exmo):
    guard = cg.Guard(exmo, now=NOW)
    with pytest.raises(cg.RequestError) as raised:
        guard.prepare({**TEMPLATE, "subject": "u1"})
    assert raised.value.field == "subject"
    with pytest.raises(cg.RequestError) as raised:
        guard.prepare({**TEMPLATE, "at": "2026-01-01T00:00:00Z"})
    assert raised.value.field == "at"
    with pytest.raises(cg.RequestError) as raised:
        guard.prepare({**TEMPLATE, "purpose": "no.such"})
    assert raised.value.field == "purpose"
    with pytest.raises(cg.RequestError) as raised:
        guard.prepare({**TEMPLATE, "bogus": 1})
    assert "bogus" in str(raised.value)
    prepared = guard.prepare(TEMPLATE)
    with pytest.raises(cg.RequestError, match="subject: must not be empty"):
        prepared.check("")
    with pytest.raises(cg.RequestError, match="subject: must not be empty"):
        prepared.allows("")
    with pytest.raises(cg.RequestError, match="subject: must not be empty"):
        prepared.check_many(["u1", ""])
    with pytest.raises(TypeError):
        prepared.check_many("u1")
    with pytest.raises(TypeError):
        prepared.check_many(["u1", 2])
    assert prepared.check_many([]) == []
    assert "u1" not in repr(prepared)


def test_prepared_checks_and_batches_are_audited(exmo, tmp_path):
    audit = tmp_path / "audit"
    guard = cg.Guard(exmo, audit=audit, now=NOW)
    prepared = guard.prepare(TEMPLATE)
    prepared.check("a1")
    assert prepared.check_many(["a2", "a3", "a4"]) == [False] * 3
    assert not prepared.allows("a5")
    del prepared, guard
    written = b"".join(p.read_bytes() for p in audit.rglob("*") if p.is_file())
    # Format 3: each record names its subject by a pseudonym (32 hex digits under the
    # subject's key), never by its id.
    for subject in (b"a1", b"a2", b"a3", b"a4", b"a5"):
        assert b'"' + subject + b'"' not in written
    assert written.count(b"consent_missing") >= 5
    assert len(re.findall(rb'\[\d+,"[0-9a-f]{32}","consent_missing",', written)) >= 5


# The dict reader: straight from the Python objects, the same answers and errors as text.

def mutations(rng, request):
    """Near-valid requests as dicts: fields dropped, renamed, retyped, nested."""
    values = [None, True, 0, -1, 2**70, 1.5, float("nan"), "", "x", "anonymized", [], ["behavior.log"], {},
              {"kind": "internal"}, ("behavior.log",), b"bytes", object(), [[[]]], {"a": {"b": {}}}]
    out = copy.deepcopy(request)
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(4)
        key = rng.choice(list(out) or ["subject"])
        if choice == 0 and out:
            out.pop(key, None)
        elif choice == 1:
            out[key] = rng.choice(values)
        elif choice == 2:
            out[rng.choice(["bogus", "at", "collected_at", "recipient", "signals", "region", "basis", "action",
                            "session"])] = rng.choice(values + ["2026-01-01T00:00:00Z", "read", "CN"])
        else:
            out[1] = "not a str key"
    return out


def representable(value):
    """Whether the binding reads `value` as JSON (json.dumps is laxer)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and representable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(representable(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    return False


def outcome(call, request):
    try:
        d = call(request)
        return ("ok", d.allowed, d.code, d.clause, d.explain())
    except Exception as error:  # noqa: BLE001 - the kind and words are compared
        return (type(error).__name__, str(error), getattr(error, "field", None))


def test_a_dict_answers_as_its_json_text_does(exmo):
    rng = random.Random(26)
    guard = cg.Guard(exmo, now=NOW)
    guard.record({"type": "grant", "subject": "u1", "purposes": ["ai_training"], "level": "separate",
                  "at": "2026-01-02T00:00:00Z"})
    base = {**TEMPLATE, "subject": "u1"}
    assert guard._reads_directly(base)
    direct = 0
    for _ in range(2000):
        request = mutations(rng, base)
        try:
            text = json.dumps(request)
        except (TypeError, ValueError):
            text = None
        got = outcome(guard.check, request)
        if text is not None and representable(request):
            assert got == outcome(guard.check, text), request
        else:
            # Not JSON as the binding reads a dict (a key that is not a str, an int
            # beyond 64 bits, NaN): an error either way, never an answer.
            assert got[0] != "ok" and outcome(guard.check, text or "")[0] != "ok", request
        direct += guard._reads_directly(request)
    assert direct > 100, "valid mutations are read straight from the dict"


def test_a_dict_subclass_goes_the_json_way_with_the_same_answer(exmo):
    class Tracked(dict):
        """A subclass may define how it iterates: the direct reader leaves it alone."""

    guard = cg.Guard(exmo, now=NOW)
    plain = {**TEMPLATE, "subject": "u1"}
    assert guard._reads_directly(plain) and not guard._reads_directly(Tracked(plain))
    assert outcome(guard.check, Tracked(plain)) == outcome(guard.check, plain)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_golden_request_is_read_straight_from_its_dict(seed):
    guard, cases = golden(seed)
    for case in cases:
        request = case["request"]
        assert guard._reads_directly(request), case["name"]
        assert outcome(guard.check, request) == outcome(guard.check, json.dumps(request)), case["name"]


def test_deep_and_self_containing_dicts_are_errors_not_crashes(exmo):
    guard = cg.Guard(exmo, now=NOW)
    deep = {}
    cursor = deep
    for _ in range(10_000):
        cursor["signals"] = {}
        cursor = cursor["signals"]
    loop = {**TEMPLATE, "subject": "u1"}
    loop["recipient"] = loop
    nested_list = [[]]
    for _ in range(10_000):
        nested_list = [nested_list]
    for request in (deep, loop, {**TEMPLATE, "subject": "u1", "categories": nested_list}):
        assert not guard._reads_directly(request)
        with pytest.raises((cg.RequestError, ValueError)):
            guard.check(request)
