"""Shared fixtures. BLAS threads are pinned before numpy loads (see bayes_sor/__init__.py)."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture
def reference() -> Path:
    """The shared reference folder; tests that need it skip where it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (CI has ../shared/reference)")
    return REFERENCE


@pytest.fixture
def root() -> Path:
    return ROOT
