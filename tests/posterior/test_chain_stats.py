"""bayes_sor's own R-hat, ESS, intervals and E-BFMI give arviz-stats' numbers bit for bit."""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
from scipy.fftpack import next_fast_len

from bayes_sor.posterior import chain_stats
from bayes_sor.posterior.summary import summarize

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


@pytest.mark.parametrize("shape", [(4, 400), (3, 101), (1, 80), (4, 3)])
def test_a_posterior_at_once_gives_each_entrys_statistics_as_arviz_stats(shape):
    """Every entry of (entry, chain, draw) draws summarised in one call (as ``summarize`` does
    for a whole posterior) gets arviz-stats' numbers to the last bit, whatever its neighbours:
    continuous, tied, two-valued (a NaN folded R-hat), constant, with a NaN, autocorrelated."""
    n_chain, n_draw = shape
    entries = RNG.normal(size=(7, n_chain, n_draw))
    entries[1] = np.round(entries[1], 1)
    entries[2] = RNG.integers(0, 2, size=shape) * 2.0
    entries[3] = 2.5
    entries[4, 0, n_draw // 2] = np.nan
    entries[5] = np.cumsum(entries[5], axis=1)
    data = xr.DataArray(np.moveaxis(entries, 0, -1), dims=("chain", "draw", "x"))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = np.stack(
            [
                azs.rhat(data).values,
                azs.ess(data, method="bulk").values,
                azs.ess(data, method="tail").values,
            ],
            axis=-1,
        )
        got = chain_stats.convergence(entries)
        for interval in ("eti", "hdi"):
            np.testing.assert_array_equal(
                getattr(chain_stats, interval)(entries, 0.9),
                getattr(azs, interval)(data, prob=0.9).values,
            )
    np.testing.assert_array_equal(got, expected)


def test_summarize_computes_a_whole_posteriors_convergence_in_one_call(monkeypatch):
    """``summarize`` hands all entries to the statistics at once (one call per entry spent about
    a quarter of Study A's 0.37 CPU s of summaries in Python around the arithmetic), and its
    table still has each entry's own numbers."""
    calls = []
    convergence = chain_stats.convergence
    monkeypatch.setattr(chain_stats, "convergence", lambda d: calls.append(d) or convergence(d))
    draws = xr.DataArray(RNG.normal(size=(4, 200, 5)), dims=("chain", "draw", "param"))
    table = summarize(draws)
    assert len(calls) == 1
    for j in range(5):
        entry = draws.values[:, :, j]
        np.testing.assert_array_equal(
            table.iloc[j][["r_hat", "ess_bulk", "ess_tail"]].to_numpy(float), convergence(entry)
        )
        np.testing.assert_array_equal(
            table.iloc[j][["ci.lower", "ci.upper"]].to_numpy(float), chain_stats.eti(entry, 0.95)
        )
