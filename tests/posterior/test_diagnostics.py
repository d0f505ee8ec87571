"""Convergence checks on synthetic chains whose verdict is known."""

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.posterior.diagnostics import check_convergence
from bayes_sor.posterior.summary import summarize


def _tree(draws: np.ndarray, diverging: int = 0) -> tuple[xr.DataTree, pd.DataFrame]:
    chains, n, k = draws.shape
    par = xr.DataArray(
        draws, dims=("chain", "draw", "param"), coords={"param": [f"F=~y{i}" for i in range(k)]}
    )
    div = np.zeros((chains, n), dtype=bool)
    div.flat[:diverging] = True
    rng = np.random.default_rng(5)
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), div),
            "energy": (("chain", "draw"), rng.normal(size=(chains, n))),
        }
    )
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"par": par}), "sample_stats": stats})
    table = summarize(par)
    estimates = pd.DataFrame(
        {
            "lhs": "F",
            "op": "=~",
            "rhs": [f"y{i}" for i in range(k)],
            "free": np.arange(1, k + 1),
            "r_hat": table.r_hat.to_numpy(),
            "sd": table["sd"].to_numpy(),
            "prior": "normal(0,10)",
            "ess_bulk": table.ess_bulk.to_numpy(),
            "ess_tail": table.ess_tail.to_numpy(),
        }
    )
    return tree, estimates


def test_independent_chains_pass():
    draws = np.random.default_rng(0).normal(size=(4, 1000, 3))
    diag = check_convergence(*_tree(draws))
    assert diag.ok, diag.problems
    assert diag.max_r_hat < 1.01 and diag.min_ess_bulk > 400


def test_a_shifted_chain_fails_rhat_and_names_the_parameter():
    draws = np.random.default_rng(1).normal(size=(4, 1000, 3))
    draws[0, :, 2] += 3.0
    diag = check_convergence(*_tree(draws))
    assert not diag.ok
    assert any("R-hat" in p and "F =~ y2" in p for p in diag.problems)
    assert not any("F =~ y0" in p for p in diag.problems if "R-hat" in p)


def test_autocorrelated_chains_fail_ess():
    rng = np.random.default_rng(2)
    draws = np.cumsum(rng.normal(size=(4, 1000, 2)), axis=1) * 0.05
    diag = check_convergence(*_tree(draws))
    assert any("ESS" in p for p in diag.problems)


def test_divergences_are_counted_and_fail():
    draws = np.random.default_rng(3).normal(size=(4, 1000, 2))
    diag = check_convergence(*_tree(draws, diverging=5))
    assert diag.divergences == 5
    assert any("divergent" in p for p in diag.problems)


def test_sign_flipped_chains_are_detected():
    rng = np.random.default_rng(4)
    draws = rng.normal(0.8, 0.05, size=(4, 1000, 2))
    draws[1] *= -1
    diag = check_convergence(*_tree(draws))
    assert any("sign-flipped" in p and "F=~y0" in p for p in diag.problems)


def test_a_posterior_equal_to_its_prior_is_flagged():
    rng = np.random.default_rng(6)
    draws = rng.normal(0.0, 0.1, size=(4, 1000, 2))
    draws[..., 1] = rng.normal(0.0, 9.0, size=(4, 1000))
    diag = check_convergence(*_tree(draws))
    flagged = [p for p in diag.problems if "nearly the prior" in p]
    assert flagged and "F =~ y1" in flagged[0] and "F =~ y0" not in flagged[0]


def test_small_variance_parameters_may_equal_their_prior():
    # BSEM's cross-loadings are identified by their priors: a posterior near the prior there is
    # the design, not under-identification; any other parameter is still flagged
    rng = np.random.default_rng(6)
    draws = rng.normal(0.0, 9.0, size=(4, 1000, 3))
    diag = check_convergence(*_tree(draws), prior_identified=["F =~ y1"])
    flagged = [p for p in diag.problems if "nearly the prior" in p]
    assert flagged and "F =~ y0" in flagged[0] and "F =~ y1" not in flagged[0]
