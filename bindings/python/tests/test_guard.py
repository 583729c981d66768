"""The guard from Python: policies, checks, events, history, store and audit."""

import json
import os

import pytest

import consent_guard as cg
from conftest import NOW, POLICIES, SEEDS

TRAINING = {
    "subject": "u1",
    "purpose": "ai_training.model_training",
    "categories": ["behavior.log"],
    "deidentification": "anonymized",
}
GRANT = {
    "type": "grant",
    "subject": "u1",
    "purposes": ["ai_training"],
    "level": "separate",
    "at": "2026-01-02T00:00:00Z",
}


@pytest.mark.parametrize("seed", SEEDS)
def test_every_seed_policy_loads(seed):
    policy = cg.Policy.from_file(POLICIES / f"{seed}.toml")
    assert policy.name == seed
    assert policy.version
    assert repr(policy).startswith("Policy(name=")


def test_a_bad_policy_raises_with_every_diagnostic_located():
    text = '[policy]\nname = "x"\nversion = "1"\nhome_region = "CN"\nstorage_regions = ["CN"]\n\n[[rule]]\nid = "r"\npurposes = ["no_such.purpose"]\nbasis = "consent"\nlevel = "explicit"\ncategories = ["behavior"]\nbogus = 1\n'
    with pytest.raises(cg.PolicyError) as raised:
        cg.Policy.from_toml(text, file="bad.toml")
    diagnostics = raised.value.diagnostics
    assert diagnostics, "a PolicyError carries its diagnostics"
    for d in diagnostics:
        assert d["file"] == "bad.toml"
        assert d["line"] >= 1 and d["column"] >= 1
        assert d["severity"] in ("error", "warning")
        assert d["message"]
    assert any(d["severity"] == "error" for d in diagnostics)
    assert "bad.toml:" in str(raised.value)
    assert isinstance(raised.value, cg.ConsentGuardError)


def test_a_missing_policy_file_raises():
    with pytest.raises(cg.PolicyError):
        cg.Policy.from_file(POLICIES / "missing.toml")


def test_training_is_off_by_default_and_on_with_separate_consent(exmo):
    guard = cg.Guard(exmo, now="2026-06-01T00:00:00Z")
    denied = guard.check(TRAINING)
    assert not denied.allowed and not denied
    assert denied.code == "consent_missing"
    guard.record(GRANT)
    allowed = guard.check(json.dumps(TRAINING))
    assert allowed.allowed and allowed
    assert allowed.code == "consent_given"
    assert allowed.clause
    assert allowed.policy_version == exmo.version
    assert allowed.basis == "consent"
    assert isinstance(allowed.explain(), str) and allowed.explain()
    as_dict = allowed.to_dict()
    assert as_dict["allowed"] is True and as_dict["code"] == "consent_given"


def test_a_decision_never_prints_the_subject(exmo):
    guard = cg.Guard(exmo, now=NOW)
    decision = guard.check(dict(TRAINING, subject="alice@example.com"))
    assert "alice" not in repr(decision)
    assert "<redacted>" in repr(decision)


def test_requests_as_bytes_and_what_if(exmo):
    guard = cg.Guard(exmo, now="2026-06-01T00:00:00Z")
    guard.record(GRANT)
    before = dict(TRAINING, at="2026-01-01T00:00:00Z")
    assert guard.check(json.dumps(before).encode()).code == "consent_missing"
    assert guard.check(TRAINING).code == "consent_given"


@pytest.mark.parametrize(
    "request_, field",
    [
        (dict(TRAINING, purpose="no_such_purpose"), "purpose"),
        (dict(TRAINING, categories=["no.such"]), "categories"),
        (dict(TRAINING, at="yesterday"), "at"),
        (dict(TRAINING, colour="blue"), None),
    ],
)
def test_a_bad_request_raises_request_error_naming_the_field(exmo, request_, field):
    guard = cg.Guard(exmo, now=NOW)
    with pytest.raises(cg.RequestError) as raised:
        guard.check(request_)
    if field is not None:
        assert raised.value.field == field
        assert field in str(raised.value)


def test_a_bad_event_raises_event_error_and_records_nothing(exmo):
    guard = cg.Guard(exmo, now=NOW)
    with pytest.raises(cg.EventError) as raised:
        guard.record(dict(GRANT, purposes=["no_such_purpose"]))
    assert raised.value.field == "purposes"
    with pytest.raises(cg.EventError):
        guard.record('{"type":"grant"')
    assert guard.history("u1")["events"] == []


def test_what_is_not_json_is_a_type_error(exmo):
    guard = cg.Guard(exmo, now=NOW)
    for value in (None, 42, ["a"], object()):
        with pytest.raises(TypeError):
            guard.check(value)
    with pytest.raises(TypeError):
        guard.check({"subject": object()})


def test_deep_and_cyclic_dicts_raise_instead_of_crashing(exmo):
    guard = cg.Guard(exmo, now=NOW)
    deep = {}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ValueError):
        guard.check(deep)
    cyclic = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError):
        guard.check(cyclic)


def test_history_lists_the_events(exmo):
    guard = cg.Guard(exmo, now=NOW)
    guard.record(GRANT)
    history = guard.history("u1")
    assert history["subject"] == "u1"
    assert [e["type"] for e in history["events"]] == ["grant"]


def test_the_embedded_store_keeps_consent_across_guards(exmo, tmp_path):
    store = tmp_path / "consent.redb"
    first = cg.Guard(exmo, store=store, now="2026-06-01T00:00:00Z")
    first.record(GRANT)
    del first
    second = cg.Guard(exmo, store=store, now="2026-06-01T00:00:00Z")
    assert second.check(TRAINING).code == "consent_given"


def test_a_damaged_store_is_refused(exmo, tmp_path):
    store = tmp_path / "consent.redb"
    store.write_bytes(b"\0" * 4096)
    with pytest.raises(cg.StoreError):
        cg.Guard(exmo, store=store)


def test_the_audit_log_records_each_check(exmo, tmp_path):
    audit = tmp_path / "audit"
    guard = cg.Guard(exmo, audit=audit, now=NOW)
    for _ in range(3):
        guard.check(TRAINING)
    del guard
    written = b"".join(p.read_bytes() for p in audit.rglob("*") if p.is_file())
    assert written.count(b"consent_missing") == 3


def test_explain_gives_the_structured_description(exmo):
    text = exmo.explain()
    assert json.loads(text) == exmo.explain(format="dict")
    with pytest.raises(ValueError, match="format"):
        exmo.explain(format="pdf")


def test_a_bad_clock_is_a_value_error(exmo):
    with pytest.raises(ValueError, match="now"):
        cg.Guard(exmo, now="tomorrow")


def test_untrusted_input_never_crashes_the_interpreter(exmo):
    """Random bytes and near-valid JSON into every parser: exceptions, never a crash."""
    import random

    rng = random.Random(26)
    guard = cg.Guard(exmo, now=NOW)
    valid = json.dumps(TRAINING).encode()
    event = json.dumps(GRANT).encode()
    policy_text = (POLICIES / "exmo.toml").read_bytes()
    for _ in range(2000):
        for base, call in ((valid, guard.check), (event, guard.record)):
            data = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                call(bytes(data))
            except (cg.ConsentGuardError, ValueError, TypeError):
                pass
    for _ in range(200):
        data = bytearray(policy_text)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(128)
        try:
            cg.Policy.from_toml(data.decode("utf-8", "replace"), file="fuzzed.toml")
        except cg.PolicyError:
            pass
