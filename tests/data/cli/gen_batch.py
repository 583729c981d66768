#!/usr/bin/env python3
"""Writes N consent events and N access requests for exmo.toml, for the batch timing
of `consent-guard check` (see README.md). Usage: gen_batch.py DIR [N]"""
import json
import os
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
os.makedirs(out, exist_ok=True)
subjects = max(1, n // 4)

with open(os.path.join(out, "events.jsonl"), "w") as f:
    for i in range(n):
        s = f"u{i // 4}"
        kind = i % 4
        if kind == 0:
            e = {"type": "grant", "subject": s, "purposes": ["ai_training"], "level": "separate",
                 "at": "2026-01-02T00:00:00Z", "policy_version": "1.0"}
        elif kind == 1:
            e = {"type": "grant", "subject": s, "purposes": ["personalization"], "level": "explicit",
                 "at": "2026-01-03T00:00:00Z"}
        elif kind == 2:
            e = {"type": "subject", "subject": s, "birth_date": "1990-01-01" if i % 40 != 2 else "2015-01-01"}
        else:
            e = {"type": "withdraw", "subject": s, "purposes": ["ai_training"], "at": "2026-02-01T00:00:00Z"} if i % 3 else {"type": "erase", "subject": s, "at": "2026-05-01T00:00:00Z"}
        f.write(json.dumps(e, separators=(",", ":")) + "\n")

purposes = [
    ("ai_training.model_training", "behavior.log", "anonymized"),
    ("personalization.recommendation", "behavior.log", "none"),
    ("advertising.personalized", "behavior.log", "none"),
    ("account.login", "account.profile", "none"),
    ("marketing.campaigns", "contact.email", "none"),
]
with open(os.path.join(out, "requests.jsonl"), "w") as f:
    for i in range(n):
        purpose, category, deid = purposes[i % len(purposes)]
        r = {"subject": f"u{(i * 7) % subjects}", "purpose": purpose, "categories": [category],
             "deidentification": deid}
        if i % 3 == 0:
            r["at"] = "2026-01-10T00:00:00Z"
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
