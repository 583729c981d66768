"""The examples in the package's docstrings run."""

import doctest

import consent_guard


def test_the_module_docstring_examples_run():
    result = doctest.testmod(consent_guard)
    assert result.attempted > 0 and result.failed == 0
