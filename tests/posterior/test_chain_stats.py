"""bayes_sor's own R-hat, ESS, intervals and E-BFMI give arviz-stats' numbers bit for bit."""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
from scipy.fftpack import next_fast_len

from bayes_sor.posterior import chain_stats

RNG = np.random.default_rng(20261206)
_AR = np.zeros((4, 500))
for _t in range(1, 500):  # strongly autocorrelated chains: a long Geyer sequence
    _AR[:, _t] = 0.95 * _AR[:, _t - 1] + RNG.normal(size=4)
#: (chain, draw) arrays: continuous, autocorrelated, with ties, odd draw counts, one chain,
#: constant, too short, with a NaN, discrete
CASES = {
    "normal": RNG.normal(size=(4, 400)),
    "autocorrelated": _AR,
    "shifted chain": RNG.normal(size=(4, 300)) + np.array([[0], [0], [0], [1.5]]),
    "ties": np.round(RNG.normal(size=(4, 200)), 1),
    "odd draws": RNG.gamma(2.0, size=(3, 101)),
    "one chain": RNG.normal(size=(1, 80)),
    "constant": np.full((4, 50), 2.5),
    "three draws": RNG.normal(size=(4, 3)),
    "nan": np.where(np.arange(200) == 7, np.nan, RNG.normal(size=(2, 200))),
    "discrete": RNG.integers(0, 3, size=(2, 60)).astype(float),
}


def _arviz(draws: np.ndarray, prob: float) -> list[float]:
    data = xr.DataArray(draws[:, :, None], dims=("chain", "draw", "x"))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return [
            float(azs.rhat(data)[0]),
            float(azs.ess(data, method="bulk")[0]),
            float(azs.ess(data, method="tail")[0]),
            *azs.eti(data, prob=prob).values[0],
            *azs.hdi(data, prob=prob).values[0],
        ]


def _ours(draws: np.ndarray, prob: float) -> list[float]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return [
            *chain_stats.convergence(draws),
            *chain_stats.eti(draws, prob),
            *chain_stats.hdi(draws, prob),
        ]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("prob", [0.95, 0.5])
def test_statistics_equal_arviz_stats(case, prob):
    """R-hat (rank-normalised, split), bulk and tail ESS, ETI and HDI as arviz-stats computes
    them, to the last bit (NaN where it gives NaN)."""
    expected, got = _arviz(CASES[case], prob), _ours(CASES[case], prob)
    np.testing.assert_array_equal(got, expected)


def test_e_bfmi_equals_arviz_stats():
    energy = np.cumsum(RNG.normal(size=(4, 300)), axis=1)
    tree = xr.DataTree.from_dict(
        {"sample_stats": xr.Dataset({"energy": (("chain", "draw"), energy)})}
    )
    np.testing.assert_array_equal(chain_stats.bfmi(energy), azs.bfmi(tree)["energy"].values)


def test_fft_lengths_are_scipys():
    """The autocovariance's FFT length: 2-3-5-smooth, as ``scipy.fftpack.next_fast_len``."""
    assert [chain_stats._next_regular(n) for n in range(1, 3000)] == [
        next_fast_len(n) for n in range(1, 3000)
    ]
