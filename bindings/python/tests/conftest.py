"""Shared fixtures: the repository's seed policies and golden files."""

import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "examples" / "policies"
GOLDEN = ROOT / "tests" / "golden"
SEEDS = ["exmo", "kmengai", "aimate", "nexacore", "aiart"]

FILTER_POLICY = '''
[policy]
name = "filters"
version = "1.0"
home_region = "CN"
storage_regions = ["CN"]

[[rule]]
id = "training"
purposes = ["ai_training"]
basis = "consent"
level = "explicit"
default = "opt_in"
categories = ["behavior"]
retention = "30d"

[[rule]]
id = "notifications"
purposes = ["service.notifications"]
basis = "consent"
level = "implied"
default = "opt_out"
categories = ["behavior"]
'''

NOW = "2026-03-01T00:00:00Z"


@pytest.fixture
def exmo():
    import consent_guard as cg

    return cg.Policy.from_file(POLICIES / "exmo.toml")


@pytest.fixture
def filter_policy():
    import consent_guard as cg

    return cg.Policy.from_toml(FILTER_POLICY, file="filters.toml")


def require(module):
    """`module`, or a skip where it is not installed; under CI (`CI` set) its absence
    fails the test instead, as a test that passes without running proves nothing."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)
