"""The reference folder's absence skips tests locally and fails them in CI."""

import pytest
from reference_data import require_reference

MISSING = "no/such/reference"


@pytest.mark.parametrize(
    ("flags", "outcome"),
    [
        ({}, pytest.skip.Exception),
        ({"BAYES_SOR_REQUIRE_REFERENCE": "0"}, pytest.skip.Exception),
        ({"BAYES_SOR_REQUIRE_REFERENCE": "1"}, pytest.fail.Exception),
        ({"CI": "true"}, pytest.fail.Exception),
    ],
)
def test_absent_reference_skips_except_in_ci(monkeypatch, tmp_path, flags, outcome):
    for name in ("BAYES_SOR_REQUIRE_REFERENCE", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in flags.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(outcome, match="reference data not found"):
        require_reference(tmp_path / MISSING)
    assert require_reference(tmp_path) == tmp_path
