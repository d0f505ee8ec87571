"""Parameter recovery of two-group models fitted with the conditional likelihood: a latent
interaction whose X -> Y path differs between the groups, and an ordinal CFA with equal
thresholds and loadings whose second group has another latent mean and variance (lavaan's
identification frees them, and the items' residual variances)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fakes import truth

from bayes_sor.model.simulate import simulate
from bayes_sor.runs.fit import fit
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.partable import build_partable

pytestmark = [pytest.mark.slow, pytest.mark.correctness]

INTERACTION = """
X =~ x1 + x2 + x3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
Y ~ X + W + X:W
"""
NOBS = 300
SETTINGS = SamplerSettings(chains=2, draws=500, tune=500, seed=5, progressbar=False)


def _row(estimates: pd.DataFrame, name: str, group: str) -> pd.Series:
    rows = estimates[(estimates.lhs + estimates.op + estimates.rhs == name)]
    return rows[rows.group == group].iloc[0]


def _covers(row: pd.Series, value: float) -> bool:
    return row["ci.lower"] <= value <= row["ci.upper"]


def test_a_group_difference_in_a_structural_path_with_a_latent_interaction_is_recovered():
    pt = build_partable(INTERACTION)
    paths = {"A": {"Y~X": 0.2, "Y~W": 0.3, "Y~X:W": 0.25}, "B": {"Y~X": 0.7, "Y~W": 0.3}}
    parts = []
    for seed, label in enumerate(("A", "B"), start=1):
        values = {**paths["A"], **paths[label], "X~~W": 0.3}
        par = truth(pt, values, loading=0.8, variance=0.4, intercept=3.0)
        parts.append(simulate(pt, par, NOBS, seed=seed).assign(g=label))
    data = pd.concat(parts).sort_index(kind="stable").reset_index(drop=True)  # A, B, A, ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(
            INTERACTION,
            data,
            scale="none",
            group="g",
            group_equal="loadings,intercepts",
            settings=SETTINGS,
        )
    est = result.estimates
    # Within 3 posterior SDs, not inside every 95% interval: group A's scores are the scale
    # of B's (its latent variances are 1), so the sampling error of A's sample moves all of B's
    # estimates together (at this seed A's X items covary 0.49 against the population's 0.64:
    # B's X variance comes out 1.40 (SD 0.20) and its X -> Y path 0.52 (SD 0.08)).
    for label in ("A", "B"):
        for name in ("Y~X", "Y~W", "Y~X:W"):
            row = _row(est, name, label)
            value = {**paths["A"], **paths[label]}[name]
            assert abs(row["mean"] - value) < 3 * row["sd"], (name, label, row["mean"])
    for name, value in (("X~1", 0.0), ("X~~X", 1.0), ("W~~W", 1.0), ("X~~W", 0.3)):
        row = _row(est, name, "B")
        assert abs(row["mean"] - value) < 3 * row["sd"], (name, row["mean"], row["sd"])
    effects = result.effects
    difference = effects[(effects.kind == "direct") & (effects.effect == "X -> Y")]
    difference = difference[difference.group == "B - A"].iloc[0]
    assert difference.p_positive > 0.975  # the group difference is detected
    assert abs(difference["mean"] - 0.5) < 3 * difference["sd"]


def _ordinal_groups(n: int, seed: int) -> pd.DataFrame:
    """Five 4-category items, loadings 1.0-1.4, thresholds -1, 0, 1 (+0.2 per item), theta
    parameterisation (unit residual variances); group B's factor N(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    loadings = np.linspace(1.0, 1.4, 5)
    cuts = np.array([-1.0, 0.0, 1.0])[None, :] + 0.2 * np.arange(5)[:, None]
    frames = []
    for label, mean, var in (("A", 0.0, 1.0), ("B", 0.5, 1.5)):
        eta = rng.normal(mean, np.sqrt(var), n)
        latent = eta[:, None] * loadings + rng.normal(size=(n, 5))
        answers = 1 + np.stack([np.searchsorted(cuts[k], latent[:, k]) for k in range(5)], 1)
        frames.append(pd.DataFrame(answers, columns=[f"y{k}" for k in range(1, 6)]).assign(g=label))
    return pd.concat(frames, ignore_index=True)


def test_an_ordinal_two_group_cfa_with_equal_thresholds_recovers_the_latent_mean_difference():
    data = _ordinal_groups(NOBS, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(
            "F =~ y1 + y2 + y3 + y4 + y5\n",
            data,
            ordinal="all",
            group="g",
            group_equal="loadings,thresholds",
            settings=SETTINGS,
        )
    est = result.estimates
    thresholds = est[est.op == "|"]
    np.testing.assert_array_equal(  # one set of thresholds, the same variables in B
        thresholds[thresholds.group == "A"]["mean"], thresholds[thresholds.group == "B"]["mean"]
    )
    assert _covers(_row(est, "F~1", "B"), 0.5) and _row(est, "F~1", "B")["ci.lower"] > 0
    assert _covers(_row(est, "F~~F", "B"), 1.5)
    # 5 loadings, 5 residual variances, 15 thresholds: each within 3 posterior SDs (all 95%
    # intervals would miss one in most data sets; this one's group A alone, fitted with one
    # group, puts y1's loading at 1.27 (SD 0.14) against a true 1.0, as the two groups do)
    truths = {f"F=~y{k}": lam for k, lam in enumerate(np.linspace(1.0, 1.4, 5), start=1)}
    truths |= {f"y{k}~~y{k}": 1.0 for k in range(1, 6)}
    truths |= {
        f"y{k}|t{j}": c + 0.2 * (k - 1) for k in range(1, 6) for j, c in ((1, -1), (2, 0), (3, 1))
    }
    for name, value in truths.items():
        row = _row(est, name, "B")
        assert abs(row["mean"] - value) < 3 * row["sd"], (name, row["mean"], row["sd"])
