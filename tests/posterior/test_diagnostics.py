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


def _two_groups(draws: np.ndarray) -> tuple[xr.DataTree, pd.DataFrame]:
    """Loadings of y0 and y1 in groups A and B; y0's is one parameter in both."""
    tree, estimates = _tree(draws)
    names = ["F=~y0", "F=~y1", "F=~y0.g2", "F=~y1.g2"]
    tree = xr.DataTree.from_dict(
        {
            "posterior": tree["posterior"].to_dataset().assign_coords(param=names),
            "sample_stats": tree["sample_stats"].to_dataset(),
        }
    )
    estimates["rhs"], estimates["group"] = ["y0", "y1", "y0", "y1"], ["A", "A", "B", "B"]
    estimates["free"] = [1, 2, 1, 3]
    return tree, estimates


def test_multiple_groups_name_each_parameter_once_with_its_group():
    """Parameters named alike in two groups: the message says which group's mixes badly, a
    parameter shared by both groups is named once, and the sign check reads each group's own
    loading (``F=~y1.g2``)."""
    draws = np.random.default_rng(6).normal(0.8, 0.05, size=(4, 1000, 4))
    draws[1, :, 3] *= -1  # the second group's y1 loading flips in one chain
    diag = check_convergence(*_two_groups(draws))
    rhat = next(p for p in diag.problems if "R-hat" in p)
    assert "F =~ y1 [B]" in rhat and "[A]" not in rhat
    assert any("sign-flipped" in p and "F=~y1.g2" in p for p in diag.problems)
    shared = draws.copy()
    shared[1, :, 3] *= -1
    shared[0, :, [0, 2]] += 1.0  # the shared loading: both groups' rows move
    rhat = next(p for p in check_convergence(*_two_groups(shared)).problems if "R-hat" in p)
    assert rhat.count("F =~ y0") == 1


def test_intercepts_are_named_with_single_spaces():
    """An intercept's rhs is empty: it was named ``y1 ~1  [B]`` (two spaces), and ``y1 ~1 ``
    in a one-group run."""
    draws = np.random.default_rng(6).normal(0.8, 0.05, size=(4, 1000, 4))
    draws[1, :, 3] += 1.0
    tree, estimates = _two_groups(draws)
    names = ["y0~1", "y1~1", "y0~1.g2", "y1~1.g2"]
    tree = xr.DataTree.from_dict(
        {
            "posterior": tree["posterior"].to_dataset().assign_coords(param=names),
            "sample_stats": tree["sample_stats"].to_dataset(),
        }
    )
    estimates["lhs"], estimates["op"], estimates["rhs"] = ["y0", "y1"] * 2, "~1", ""
    rhat = next(p for p in check_convergence(tree, estimates).problems if "R-hat" in p)
    assert "y1 ~1 [B] (max" in rhat
    one = estimates.drop(columns="group").assign(free=[1, 2, 3, 4])
    rhat = next(p for p in check_convergence(tree, one).problems if "R-hat" in p)
    assert "y1 ~1 (max" in rhat


def test_small_variance_parameters_may_equal_their_prior():
    # BSEM's cross-loadings are identified by their priors: a posterior near the prior there is
    # the design, not under-identification; any other parameter is still flagged
    rng = np.random.default_rng(6)
    draws = rng.normal(0.0, 9.0, size=(4, 1000, 3))
    diag = check_convergence(*_tree(draws), prior_identified=["F =~ y1"])
    flagged = [p for p in diag.problems if "nearly the prior" in p]
    assert flagged and "F =~ y0" in flagged[0] and "F =~ y1" not in flagged[0]
