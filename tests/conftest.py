"""Shared fixtures. BLAS threads are pinned before numpy loads (see bayes_sor/__init__.py)."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from paths import ROOT  # noqa: E402
from reference_data import require_reference  # noqa: E402


@pytest.fixture
def reference() -> Path:
    """The shared reference folder; tests that need it skip where it is absent, fail in CI."""
    return require_reference()


@pytest.fixture
def root() -> Path:
    return ROOT
