"""The peers' consent workload from Python (issue 26): consent-guard's wheel beside
cedarpy (Cedar's Python binding, PyO3 like ours), on the workload of
`benches/peers/src/main.rs`: the same generator and seed, the same three purposes,
every answer held to the reference computed from the workload itself.

Both engines get their best form: cedarpy a pre-parsed `PolicySet` and `Entities` of
every subject, built once; the guard a policy and events recorded once, and each
request as JSON text (`Guard.check`) or a dict, or one prepared check per purpose
(`Guard.prepare`) asked per subject (`PreparedCheck.check`, or `.allows` for the bool
alone) or for the whole batch of
a purpose's subjects in one call (`PreparedCheck.check_many`: per decision, the call
divided by its subjects). Every form answers every request of the round.

    pip install cedarpy target/wheels/consent_guard-*.whl   # the wheel built --release
    python benches/peers/python/peers.py                    # PEERS_SUBJECTS (10,000), PEERS_REQUESTS (100,000)
"""

import json
import os
import statistics
import time
from pathlib import Path

import cedarpy

import consent_guard as cg

HERE = Path(__file__).resolve().parent
POLICIES = HERE.parent / "policies"
PURPOSES = ["training", "ads", "recommendations"]
GUARD_PURPOSES = ["ai_training.model_training", "advertising.personalized", "personalization.recommendation"]
REQUIRED = [3, 2, 1]
GUARDIAN_UNDER = 14
LEVELS = {1: "implied", 2: "explicit", 3: "separate"}
MASK = (1 << 64) - 1


class Rng:
    """xorshift64*, as the Rust harness: the same workload for the same seed."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & MASK
        x ^= x >> 27
        self.state = x
        return (x * 0x2545F4914F6CDD1D) & MASK

    def below(self, n):
        return (self.next() * n) >> 64


def workload(subjects):
    rng = Rng(0x5EED)
    out = []
    for _ in range(subjects):
        age = 8 + rng.below(50)
        consents = []
        for _ in range(3):
            level = rng.below(4)
            guardian = level > 0 and rng.below(2) == 0
            withdrawn = level > 0 and rng.below(5) == 0
            consents.append((level, guardian, withdrawn))
        out.append((age, consents))
    return out


def reference(subject, purpose):
    age, consents = subject
    level, guardian, withdrawn = consents[purpose]
    return level >= REQUIRED[purpose] and not withdrawn and (age >= GUARDIAN_UNDER or guardian)


def requests(subjects, count, seed):
    rng = Rng(seed)
    return [(rng.below(subjects), rng.below(3)) for _ in range(count)]


def build_guard(work):
    guard = cg.Guard(cg.Policy.from_file(POLICIES / "peers.toml"), now="2026-06-01T00:00:00Z")
    for i, (age, consents) in enumerate(work):
        guard.record({"type": "subject", "subject": f"u{i}", "age": age, "at": "2026-01-01T00:00:00Z"})
        for purpose, (level, guardian, withdrawn) in enumerate(consents):
            if level == 0:
                continue
            guard.record({"type": "grant", "subject": f"u{i}", "purposes": [GUARD_PURPOSES[purpose]],
                          "level": LEVELS[level], "by_guardian": guardian, "at": "2026-01-02T00:00:00Z"})
            if withdrawn:
                guard.record({"type": "withdraw", "subject": f"u{i}", "purposes": [GUARD_PURPOSES[purpose]],
                              "at": "2026-01-03T00:00:00Z"})
    return guard


def build_cedar(work):
    policies = cedarpy.PolicySet.from_str((POLICIES / "peers.cedar").read_text())
    entities = []
    for i, (age, consents) in enumerate(work):
        attrs = {"age": age}
        for purpose, (level, guardian, withdrawn) in enumerate(consents):
            attrs[PURPOSES[purpose]] = {"level": level, "guardian": guardian, "withdrawn": withdrawn}
        entities.append({"uid": {"type": "User", "id": f"u{i}"}, "attrs": attrs, "parents": []})
    return policies, cedarpy.Entities.from_json_str(json.dumps(entities))


def timed(name, run, asks, work, rounds):
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        answers = run()
        samples.append((time.perf_counter() - started) / len(asks))
    for (subject, purpose), answer in zip(asks, answers):
        if answer != reference(work[subject], purpose):
            raise SystemExit(f"{name} disagrees with the reference on u{subject}, {PURPOSES[purpose]}")
    median = statistics.median(samples)
    print(f"{name:<34} {median * 1e9:10.0f} ns/decision  ({1 / median / 1e3:8.0f} k/s)")
    return median


def main():
    subjects = int(os.environ.get("PEERS_SUBJECTS", 10_000))
    count = int(os.environ.get("PEERS_REQUESTS", 100_000))
    rounds = int(os.environ.get("PEERS_ROUNDS", 5))
    print(f"load average {os.getloadavg()}; {subjects} subjects, {count} requests a round, {rounds} rounds")
    work = workload(subjects)
    asks = requests(subjects, count, 0xA5)
    guard = build_guard(work)
    texts = [json.dumps({"subject": f"u{s}", "purpose": GUARD_PURPOSES[p], "categories": ["behavior.log"]})
             for s, p in asks]
    dicts = [json.loads(t) for t in texts]
    guard_text = timed("consent-guard Guard.check(str)", lambda: [guard.check(t).allowed for t in texts],
                       asks, work, rounds)
    guard_dict = timed("consent-guard Guard.check(dict)", lambda: [guard.check(d).allowed for d in dicts],
                       asks, work, rounds)
    policies, entities = build_cedar(work)
    cedar_asks = asks[: max(count // 100, 100)]
    cedar_requests = [{"principal": f'User::"u{s}"', "action": 'Action::"use"',
                       "resource": f'Purpose::"{PURPOSES[p]}"', "context": {}} for s, p in cedar_asks]
    prepared = [guard.prepare({"purpose": purpose, "categories": ["behavior.log"]}) for purpose in GUARD_PURPOSES]
    subjects = [f"u{s}" for s, _ in asks]
    guard_prepared = timed("consent-guard PreparedCheck.check",
                           lambda: [prepared[p].check(subject).allowed for subject, (_, p) in zip(subjects, asks)],
                           asks, work, rounds)
    guard_allows = timed("consent-guard PreparedCheck.allows",
                         lambda: [prepared[p].allows(subject) for subject, (_, p) in zip(subjects, asks)],
                         asks, work, rounds)
    by_purpose = [[i for i, (_, p) in enumerate(asks) if p == purpose] for purpose in range(3)]
    batches = [[subjects[i] for i in idx] for idx in by_purpose]

    def check_many():
        answers = [None] * len(asks)
        for purpose, idx in enumerate(by_purpose):
            for i, allowed in zip(idx, prepared[purpose].check_many(batches[purpose])):
                answers[i] = allowed
        return answers

    guard_batch = timed("consent-guard check_many (3 calls)", check_many, asks, work, rounds)
    cedar = timed("cedarpy is_authorized (1/100 of them)",
                  lambda: [cedarpy.is_authorized(r, policies, entities).allowed for r in cedar_requests],
                  cedar_asks, work, rounds)
    print(f"ratio cedarpy / Guard.check(str)  {cedar / guard_text:8.1f}x")
    print(f"ratio cedarpy / Guard.check(dict) {cedar / guard_dict:8.1f}x")
    print(f"ratio cedarpy / PreparedCheck.check {cedar / guard_prepared:6.1f}x")
    print(f"ratio cedarpy / PreparedCheck.allows {cedar / guard_allows:5.1f}x")
    print(f"ratio cedarpy / check_many        {cedar / guard_batch:8.1f}x")
    for name, ratio in (("Guard.check(str)", cedar / guard_text), ("Guard.check(dict)", cedar / guard_dict),
                        ("PreparedCheck.check", cedar / guard_prepared),
                        ("PreparedCheck.allows", cedar / guard_allows), ("check_many", cedar / guard_batch)):
        print(f"  {name:<20} {'meets' if ratio >= 50 else 'does not meet'} the 50x target")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
