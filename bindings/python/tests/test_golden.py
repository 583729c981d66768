"""The five seeds' golden files, run through Python as a data team's CI would."""

import pytest

import consent_guard as cg
from conftest import GOLDEN, SEEDS


@pytest.mark.parametrize("seed", SEEDS)
def test_the_seed_golden_file_passes(seed):
    report = cg.run_golden(GOLDEN / f"{seed}.toml")
    assert report.is_success(), report.failures()
    assert report.passed > 0 and report.failed == 0
    assert report


def test_a_failing_case_is_reported_not_raised(tmp_path):
    golden = tmp_path / "wrong.toml"
    policy = (GOLDEN.parent.parent / "examples" / "policies" / "exmo.toml").as_posix()
    golden.write_text(
        f'policy = "{policy}"\nat = "2026-06-01T00:00:00Z"\n\n[[case]]\nname = "wrong on purpose"\n'
        'request = { subject = "u1", purpose = "ai_training.model_training", categories = ["behavior.log"] }\n'
        'allowed = true\ncode = "consent_given"\n'
    )
    report = cg.run_golden(golden)
    assert not report.is_success()
    assert report.failed == 1
    assert "wrong on purpose" in report.failures()


def test_a_missing_golden_file_raises():
    with pytest.raises(cg.GoldenError):
        cg.run_golden(GOLDEN / "missing.toml")
