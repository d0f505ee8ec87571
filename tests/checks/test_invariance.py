"""The invariance ladder's table (checks/invariance.py): each step read as a run and measured
by the checks every run gets (PPP, BRMSEA / BCFI, LOO), the ELPD difference and the verdict;
the ladder itself on HS is in tests/correctness/test_agreement_groups.py (slow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fakes import group_answers, mixed_labels, two_group_cfa, write_run

from bayes_sor.checks.invariance import COLUMNS, ladder_table, run_ladder, step_measures, verdict
from bayes_sor.checks.loglik import loglik_tree, loo, pointwise_loglik
from bayes_sor.errors import BayesSORError, ModelSpecError
from bayes_sor.runs.rundir import load_run
from bayes_sor.sampling.samplers import SamplerSettings


def _step(path, pt, draws, data, labels) -> SimpleNamespace:
    """A step's fit as the ladder reads it: posterior tree, table and convergence."""
    write_run(path, pt, draws, data, groups=labels)
    tree = xr.open_datatree(path / "posterior.nc").load()
    return SimpleNamespace(
        idata=tree,
        partable=pt,
        diagnostics=SimpleNamespace(max_r_hat=1.0, min_ess_bulk=1000.0),
    )


def test_the_ladder_flags_the_step_whose_constraint_the_data_refute(tmp_path):
    """Answers from a scalar two-group CFA whose group b has latent means 0.6 and -0.4: draws
    around the truth fit (PPP not small, BRMSEA near 0, BCFI near 1); the same model with
    group b's latent means held at 0 (as a wrong constraint would) misfits: PPP 0, larger
    BRMSEA, its ELPD difference below -2 SE (fails). Each step's LOO is the loglik module's."""
    pt, par = two_group_cfa()
    labels = mixed_labels(400, 1)
    data = group_answers(pt, par, labels, 2)
    rng = np.random.default_rng(3)
    draws = par * (1 + 0.02 * rng.standard_normal((2, 200, len(par))))
    wrong = draws.copy()
    wrong[..., [pt.names.index("F1~1.g2"), pt.names.index("F2~1.g2")]] = 0.0
    steps = {
        "true": _step(tmp_path / "true", pt, draws, data, labels),
        "wrong": _step(tmp_path / "wrong", pt, wrong, data, labels),
    }
    table = ladder_table(steps, seed=0).set_index("step")
    assert list(table.reset_index().columns) == COLUMNS
    true, bad = table.loc["true"], table.loc["wrong"]
    assert true.ppp > 0.05 and bad.ppp == 0.0
    assert true.brmsea < 0.05 and bad.brmsea > true.brmsea + 0.05
    assert true["brmsea.ci.lower"] <= true.brmsea <= true["brmsea.ci.upper"]
    assert true.bcfi > 0.95 and bad.bcfi < true.bcfi
    assert true.verdict == "baseline" and bad.verdict.startswith("fails")
    run = load_run(tmp_path / "true")
    assert true.elpd_loo == pytest.approx(float(loo(loglik_tree(run, pointwise_loglik(run))).elpd))


def test_verdict_a_step_fails_only_beyond_two_standard_errors():
    assert verdict(5.0, 3.6) == "holds"
    assert verdict(-7.0, 3.6) == "holds"
    assert verdict(-13.7, 6.0).startswith("fails: the constraints cost 13.7 ELPD (> 2 x SE 6.0)")


def test_a_step_without_a_pointwise_log_likelihood_is_refused_with_the_reason(tmp_path):
    """The ladder compares steps by LOO: a run without respondents (covariance matrices) has
    no pointwise log-likelihood, and the message says so rather than failing inside LOO."""
    pt, par = two_group_cfa()
    labels = mixed_labels(200, 1)
    draws = np.broadcast_to(par, (2, 20, len(par))).copy()
    path = write_run(
        tmp_path / "run", pt, draws, group_answers(pt, par, labels, 2), summary=True, groups=labels
    )
    with pytest.raises(BayesSORError, match="by LOO, unavailable: covariance-matrix input"):
        step_measures(load_run(path), np.random.default_rng(0))


@pytest.mark.parametrize(
    "model",
    [
        "---\nordinal: all\n---\nF =~ y1 + y2 + y3\n",
        "X =~ x1 + x2 + x3\nW =~ w1 + w2 + w3\nY =~ y1 + y2 + y3\nY ~ X + W + X:W\n",
    ],
)
def test_the_ladder_refuses_ordinal_items_and_latent_interactions_before_fitting(model):
    """Its PPP and LOO are the groups' normal moments', which neither model has."""
    with pytest.raises(ModelSpecError, match="invariance ladder needs continuous items"):
        run_ladder(model, pd.DataFrame(), "g", SamplerSettings())
