"""Hypotheses that compare groups (posterior/hypotheses.py): a quantity's ``[group]``, the
difference of two quantities, c() labels, and the errors of a group that does not exist."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_sor.errors import ModelSpecError
from bayes_sor.posterior import estimates
from bayes_sor.posterior.effects import effect_draws, effects_dataarray
from bayes_sor.posterior.estimates import Standardizer, parameter_estimates
from bayes_sor.posterior.hypotheses import evaluate, names_groups
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

MODEL = """X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
M ~ c(a1, a2)*X
Y ~ b*M
da := a2 - a1
"""
PATHS = {"M~X": 0.2, "M~X.g2": 0.6, "Y~M": 0.5, "Y~M.g2": 0.5}


def _fit(hypotheses: str, groups=("men", "women")):
    pt = build_partable(MODEL + hypotheses)
    pt = with_groups(pt, list(groups)) if groups else pt
    return evaluate(pt, _posterior(pt)).set_index("hypothesis")


def _posterior(pt):
    """Draws of every parameter: the paths of PATHS with a little noise, the others 0.8."""
    rng = np.random.default_rng(0)
    values = pt.parameters.value.to_numpy(dtype=float)
    par = np.tile(np.where(np.isnan(values), 0.8, values), (2, 300, 1))
    for name, value in PATHS.items():
        if name in pt.names:
            par[..., pt.names.index(name)] = value + rng.normal(0.0, 0.05, par.shape[:2])
    effects = effect_draws(pt, representation(pt), par)
    return xr.Dataset(
        {"par": (("chain", "draw", "param"), par), "effects": effects_dataarray(effects)}
    )


def test_a_quantity_per_group_and_the_difference_between_groups():
    table = _fit(
        "# H1: M ~ X [women] > 0\n# H2: M ~ X [women] > M ~ X [men]\n# H3: M ~ X > 0\n"
        "# H4: a2 > a1\n# H5: indirect(X -> M -> Y) [women] > indirect(X -> M -> Y) [men]\n"
        "# H6: Y ~ M [women] < Y ~ M [men]\n"
    )
    assert table.loc["H1", "mean"] == pytest.approx(0.6, abs=0.01)
    assert table.loc["H3", "mean"] == pytest.approx(0.2, abs=0.01)  # no group: the first
    for h in ("H2", "H4"):  # the path's labels name the same difference
        assert table.loc[h, "mean"] == pytest.approx(0.4, abs=0.01)
        assert table.loc[h, "p_direction"] == 1.0 and table.loc[h, "rope_scale"] == "std.all"
    assert table.loc["H5", "mean"] == pytest.approx(0.4 * 0.5, abs=0.01)
    # equal paths: the difference is about 0 (sd 0.07), half of its mass each side
    assert 0.2 < table.loc["H6", "p_direction"] < 0.8
    assert table.loc["H2", "std.mean"] > 0  # each side standardised in its own group


@pytest.mark.parametrize(
    ("hypothesis", "groups", "message"),
    [
        ("M ~ X [girls] > 0", ("men", "women"), "names the group 'girls'; the groups are men"),
        ("M ~ X [women] > 0", None, "the model is fitted to one group"),
        ("da [women] > 0", ("men", "women"), "a defined parameter"),
        ("M ~ X > 0 > 1", ("men", "women"), "must read"),
    ],
)
def test_group_hypotheses_that_name_nothing_are_one_clear_error(hypothesis, groups, message):
    if groups is None:
        text = MODEL.replace("c(a1, a2)*", "a1*").replace("da := a2 - a1\n", "")
        pt = build_partable(text + f"# H1: {hypothesis}\n")
        par = np.full((1, 1, len(pt.names)), 0.5)
        effects = effects_dataarray(effect_draws(pt, representation(pt), par), (1, 1))
        posterior = xr.Dataset({"par": (("chain", "draw", "param"), par), "effects": effects})
        with pytest.raises(ModelSpecError, match=message):
            evaluate(pt, posterior)
        return
    with pytest.raises(ModelSpecError, match=message):
        _fit(f"# H1: {hypothesis}\n", groups)


def test_names_groups_tells_tagged_hypotheses_from_controls():
    pt = with_groups(build_partable(MODEL), ["men", "women"])
    assert names_groups("M ~ X [women] > M ~ X [men]", pt)
    assert names_groups("indirect(X -> M -> Y) [women] > 0", pt)
    assert names_groups("a2 > a1", pt)  # c() labels: one group's each
    assert not names_groups("M ~ X > 0", pt)
    assert not names_groups("b > 0", pt)  # a plain label: one parameter of every group
    assert not names_groups("IB ~ gender[female] > 0", pt)  # a dummy-coded control, no group


def test_the_estimates_and_the_hypotheses_share_one_set_of_implied_moments(monkeypatch):
    """``fit`` hands one :class:`Standardizer` to the estimates and the hypotheses: their
    std.all draws and latent SDs come from one computation of the implied moments per group
    (four here before: the estimates' two groups again for the hypotheses), with the same
    numbers as when each computes its own."""
    pt = with_groups(
        build_partable(MODEL + "# H1: M ~ X [women] > 0\n# H2: indirect(X -> M -> Y) > 0\n"),
        ["men", "women"],
    )
    posterior = _posterior(pt)
    own_estimates, own_hypotheses = parameter_estimates(pt, posterior), evaluate(pt, posterior)
    calls = []
    implied = estimates.implied_moments
    monkeypatch.setattr(
        estimates, "implied_moments", lambda rep, par: calls.append(rep) or implied(rep, par)
    )
    shared = Standardizer(pt, posterior["par"].values)
    shared_estimates = parameter_estimates(pt, posterior, standardizer=shared)
    shared_hypotheses = evaluate(pt, posterior, standardizer=shared)
    assert len(calls) == 2  # one per group
    pd.testing.assert_frame_equal(shared_estimates, own_estimates)
    pd.testing.assert_frame_equal(shared_hypotheses, own_hypotheses)
    assert shared_hypotheses.set_index("hypothesis").loc["H2", "std.mean"] > 0
