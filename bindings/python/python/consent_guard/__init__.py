"""consent-guard: a privacy policy enforced at run time.

A :class:`Guard` decides each access to personal data against a :class:`Policy`,
with a stable reason code, the clause that decided and an audit record. A
:class:`Filter` compiles one access without its subject into a consent filter
over Arrow tables (PyArrow, Polars, DuckDB) and PostgreSQL queries, decided by the
same guard.

>>> import consent_guard as cg
>>> policy = cg.Policy.from_toml('''
... [policy]
... name = "shop"
... version = "1.0"
... home_region = "CN"
... storage_regions = ["CN"]
...
... [[rule]]
... id = "training"
... purposes = ["ai_training"]
... basis = "consent"
... level = "explicit"
... default = "opt_in"
... categories = ["behavior"]
... ''', file="shop.toml")
>>> guard = cg.Guard(policy, now="2026-03-01T00:00:00Z")
>>> request = {"subject": "u1", "purpose": "ai_training.model_training", "categories": ["behavior.log"]}
>>> guard.check(request).code
'consent_missing'
>>> guard.record({"type": "grant", "subject": "u1", "purposes": ["ai_training"],
...               "level": "explicit", "at": "2026-02-01T00:00:00Z"})
>>> decision = guard.check(request)
>>> decision.allowed, decision.code, decision.clause
(True, 'consent_given', 'training')
>>> decision
Decision(allowed=True, code='consent_given', clause='training', subject=<redacted>)

One kind of access checked for many subjects is prepared once: the template is a
request without its subject, and each answer is the one :meth:`Guard.check` gives for
the template with that subject (audited the same way).

>>> training = guard.prepare({"purpose": "ai_training.model_training", "categories": ["behavior.log"]})
>>> training
PreparedCheck(purpose='ai_training.model_training', policy_version='1.0')
>>> training.check("u1").code, training.check("u2").code
('consent_given', 'consent_missing')
>>> training.allows("u1"), training.allows("u2")
(True, False)
>>> training.check_many(["u1", "u2", "u1"])
[True, False, True]
>>> training.check_many(["u1", "u2"], codes=True)
['consent_given', 'consent_missing']
>>> guard.check_many({"purpose": "ai_training.model_training", "categories": ["behavior.log"]}, ("u2",))
[False]
"""

from ._native import (
    ConsentGuardError,
    Decision,
    EventError,
    Filter,
    FilterError,
    GoldenError,
    GoldenReport,
    Guard,
    Policy,
    PolicyError,
    PreparedCheck,
    RequestError,
    StoreError,
    __version__,
    run_golden,
)

__all__ = [
    "ConsentGuardError",
    "Decision",
    "EventError",
    "Filter",
    "FilterError",
    "GoldenError",
    "GoldenReport",
    "Guard",
    "Policy",
    "PolicyError",
    "PreparedCheck",
    "RequestError",
    "StoreError",
    "__version__",
    "run_golden",
]
