"""The shared reference folder (``../shared/reference``: lavaan, blavaan and PROCESS results
and the classic data sets).

Tests that need it skip where it is absent, as on a developer's machine without it; in CI
(``BAYES_SOR_REQUIRE_REFERENCE=1``, which ``.ci/run`` sets, or ``CI=true``) an absent folder
fails them instead, so losing it cannot turn the agreement checks into silent passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from paths import ROOT

REFERENCE = ROOT.parent / "shared" / "reference"


def reference_required() -> bool:
    """Whether this run must have the reference folder (CI)."""
    return (
        os.environ.get("BAYES_SOR_REQUIRE_REFERENCE", "") not in ("", "0")
        or os.environ.get("CI", "").lower() == "true"
    )


def require_reference(folder: Path = REFERENCE) -> Path:
    """``folder`` if it is there; else a skip, or in CI a failure."""
    if not folder.is_dir():
        message = f"reference data not found at {folder} (CI has ../shared/reference)"
        if reference_required():
            pytest.fail(message + "; BAYES_SOR_REQUIRE_REFERENCE/CI make it required")
        pytest.skip(message)
    return folder
