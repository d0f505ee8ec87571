"""The invariance ladder's table (checks/invariance.py): each step read as a run and measured
by the checks every run gets (PPP, BRMSEA / BCFI, LOO), the ELPD difference and the verdict;
the ladder itself on HS is in tests/correctness/test_agreement_groups.py (slow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fakes import group_answers, mixed_labels, truth, two_group_cfa, write_run
from ordinal_fakes import posterior_scores
from sem_models import INTERACTION

from bayes_sor.checks import invariance
from bayes_sor.checks.invariance import (
    COLUMNS,
    NO_FIT_INTERACTION,
    NO_INDICES_ORDINAL,
    STEPS,
    ladder_steps,
    ladder_table,
    run_ladder,
    step_measures,
    summary_text,
    verdict,
)
from bayes_sor.checks.loglik import loglik_tree, loo, pointwise_loglik
from bayes_sor.cli.main import main
from bayes_sor.errors import BayesSORError
from bayes_sor.model.simulate import simulate
from bayes_sor.runs.rundir import load_run
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import add_thresholds, build_partable


def _step(path, pt, draws, data, labels, write: bool = True) -> SimpleNamespace:
    """A step's fit as the ladder reads it: posterior tree, table and convergence."""
    if write:
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


def test_an_ordinal_step_without_stored_latent_scores_is_refused_with_the_fix(tmp_path):
    """The ladder keeps the scores; a step without them (an ordinal run fitted without
    --save-latent) has no marginal log-likelihood, and the message names the fix."""
    base = build_partable("F =~ u1 + u2 + u3 + u4", ordinal="all")
    pt = with_groups(add_thresholds(base, dict.fromkeys(ORDINAL_ITEMS, 4)), ["a", "b"], [])
    data, labels = _ordinal_groups(40, 0.0, 2)
    draws = np.broadcast_to(_configural_truth(pt, 0.0), (1, 10, len(pt.names))).copy()
    path = write_run(tmp_path / "o", pt, draws, data, likelihood="conditional", groups=labels)
    with pytest.raises(
        BayesSORError,
        match=r"no stored latent scores: no pointwise log-likelihood \(refit with --save-latent",
    ):
        step_measures(load_run(path), np.random.default_rng(0))


def _ordinal_groups(n: int, shift: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two groups' answers to four 4-category items of one factor (theta parameterisation):
    group b's factor has mean 0.3 and SD 1.15, and its u3 thresholds lie ``shift`` higher."""
    rng = np.random.default_rng(seed)
    labels = mixed_labels(2 * n, seed)
    eta = np.where(
        labels == "b", 0.3 + 1.15 * rng.standard_normal(2 * n), rng.standard_normal(2 * n)
    )
    ystar = eta[:, None] * LOADINGS + rng.standard_normal((2 * n, 4))
    shifts = np.where((labels == "b")[:, None] & (np.arange(4) == 2), shift, 0.0)
    codes = (ystar[..., None] > CUTS + shifts[..., None]).sum(axis=-1)
    return pd.DataFrame(codes + 1.0, columns=ORDINAL_ITEMS), labels


ORDINAL_ITEMS = ["u1", "u2", "u3", "u4"]
LOADINGS = np.array([1.0, 1.2, 0.9, 1.1])
CUTS = np.array([-1.0, 0.0, 1.0])


def _configural_truth(pt, u3_shift: float) -> np.ndarray:
    """The configural (std.lv) values of :func:`_ordinal_groups`' model: group b's loadings
    times 1.15, its thresholds less loading x 0.3, u3's ``u3_shift`` higher."""
    values = {}
    for j, item in enumerate(ORDINAL_ITEMS):
        values |= {f"F=~{item}": LOADINGS[j], f"F=~{item}.g2": 1.15 * LOADINGS[j]}
        for k, cut in enumerate(CUTS, start=1):
            shift = u3_shift if item == "u3" else 0.0
            values |= {f"{item}|t{k}": cut, f"{item}|t{k}.g2": cut - 0.3 * LOADINGS[j] + shift}
    return truth(pt, values)


def _ordinal_step(path, pt, par, data, labels, rng) -> SimpleNamespace:
    """A step whose draws lie around ``par``, with latent scores from the posterior at ``par``
    (the proposals need no more)."""
    draws = par * (1 + 0.02 * rng.standard_normal((60, len(par))))
    codes = data.to_numpy().astype(int) - 1
    scores = np.empty((len(draws), len(data), 1))
    for g, label in enumerate(pt.groups, start=1):
        rows = labels == label
        rep = representation(pt, g)
        scores[:, rows] = posterior_scores(rep, par[None], codes[rows], rng, len(draws))
    write_run(path, pt, draws[None], data, scores[None], "conditional", groups=labels)
    return _step(path, pt, draws[None], data, labels, write=False)


def test_the_ordinal_ladder_flags_a_threshold_the_groups_do_not_share(tmp_path):
    """Ordinal answers whose group b has u3's thresholds 0.8 higher: draws around the truth
    fit (PPP of the pairwise G^2 not small); the same draws with group b's u3 thresholds where
    an invariant item's would be misfit (PPP below 0.05) and fail the LOO comparison on the
    marginal log-likelihood (importance sampling, its Monte Carlo error reported); BRMSEA and
    BCFI are empty with the reason, never numbers of another discrepancy."""
    base = build_partable("F =~ u1 + u2 + u3 + u4", ordinal="all")
    pt = with_groups(add_thresholds(base, dict.fromkeys(ORDINAL_ITEMS, 4)), ["a", "b"], [])
    data, labels = _ordinal_groups(200, 0.8, 2)
    rng = np.random.default_rng(2)
    steps = {
        "true": _ordinal_step(tmp_path / "t", pt, _configural_truth(pt, 0.8), data, labels, rng),
        "wrong": _ordinal_step(tmp_path / "w", pt, _configural_truth(pt, 0.0), data, labels, rng),
    }
    table = ladder_table(steps, seed=0).set_index("step")
    true, bad = table.loc["true"], table.loc["wrong"]
    assert (table.loglik == "marginal_is").all()
    assert (table["loglik.mc_se"] < 0.05).all()
    assert true.ppp > 0.05 and bad.ppp < 0.05
    assert bad.verdict.startswith("fails")
    assert table[["brmsea", "bcfi"]].isna().all().all()
    assert (table.notes == NO_INDICES_ORDINAL).all()
    text = summary_text(table.reset_index(), "g", ["a", "b"])
    assert f"Not available: {NO_INDICES_ORDINAL}." in text
    assert "importance sampling" in text


def test_ordinal_items_equate_thresholds_at_the_scalar_step():
    """lavaan's group.equal for ordinal items: thresholds in place of intercepts (intercepts
    still for a mixed model's continuous items), residual variances added at the strict step."""
    assert ladder_steps(build_partable("F =~ y1 + y2 + y3")) == STEPS
    ordinal = ladder_steps(build_partable("F =~ y1 + y2 + y3", ordinal="all"))
    assert ordinal["scalar"] == ["loadings", "thresholds"]
    assert ordinal["strict"] == ["loadings", "thresholds", "residuals"]
    mixed = ladder_steps(build_partable("F =~ y1 + y2 + y3", ordinal=["y1"]))
    assert mixed["scalar"] == ["loadings", "thresholds", "intercepts"]


@pytest.mark.parametrize(
    ("model", "kinds"),
    [
        ("---\nordinal: all\n---\nF =~ y1 + y2 + y3\n", ["loadings", "thresholds"]),
        (
            "X =~ x1 + x2 + x3\nW =~ w1 + w2 + w3\nY =~ y1 + y2 + y3\nY ~ X + W + X:W\n",
            ["loadings", "intercepts"],
        ),
    ],
)
def test_ordinal_and_interaction_ladders_fit_each_step_keeping_the_latent_scores(
    model, kinds, monkeypatch
):
    """Each step is fitted with its group.equal kinds and save_latent (the proposals of the
    marginal log-likelihood); before, such models were refused."""
    calls = []
    fitted = SimpleNamespace(partable=SimpleNamespace(groups=["a", "b"]))
    monkeypatch.setattr(invariance, "fit", lambda *a, **k: calls.append(k) or fitted)
    monkeypatch.setattr(invariance, "ladder_table", lambda fits, seed: pd.DataFrame())
    invariance.run_ladder(model, pd.DataFrame(), "g", SamplerSettings(), steps=["scalar"])
    assert calls == [
        {
            "group": "g",
            "group_equal": kinds,
            "identification": None,
            "settings": SamplerSettings(),
            "save_latent": True,
        }
    ]


def test_an_interaction_step_is_compared_by_its_marginal_loo_without_normal_theory_fit(tmp_path):
    """A two-group latent-interaction run with stored scores: LOO on the importance-sampled
    marginal log-likelihood; no PPP, BRMSEA or BCFI (the chi-square and its replications would
    be the normal approximation's), the reason given."""
    pt = with_groups(build_partable(INTERACTION), ["a", "b"], [])
    par = truth(pt, {"x1~1": 3.0, "x1~1.g2": 3.0})
    labels = mixed_labels(120, 3)
    data = simulate(build_partable(INTERACTION), truth(build_partable(INTERACTION)), 120, seed=3)
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(1, 60, 120, 3))
    draws = par * (1 + 0.02 * rng.standard_normal((1, 60, len(par))))
    path = write_run(tmp_path / "i", pt, draws, data, scores, "conditional", groups=labels)
    row, pointwise = step_measures(load_run(path), np.random.default_rng(0))
    assert row["loglik"] == "marginal_is" and row["notes"] == NO_FIT_INTERACTION
    assert not {"ppp", "brmsea", "bcfi"} & set(row)
    assert np.isfinite(row["elpd_loo"]) and pointwise.shape == (120,)


ORDINAL_MODEL = "---\nordinal: all\n---\nF =~ u1 + u2 + u3 + u4\n"
#: the end-to-end fits: small, as the verdicts need no more
LADDER_SETTINGS = SamplerSettings(chains=2, draws=500, tune=500, seed=1, progressbar=False)


@pytest.mark.slow
def test_the_ordinal_ladder_end_to_end_flags_the_scalar_step_and_not_the_metric_one():
    """Two simulated groups of 250 whose u3 thresholds differ by 1.5 (group b's factor with
    mean 0.3 and SD 1.15): the ladder, fitted per step with the conditional likelihood and
    compared by LOO on the importance-sampled marginal log-likelihood, finds metric invariance
    and rejects the scalar step (thresholds equal). Measured: metric +1.8 (SE 1.8), scalar
    -56.3 (SE 10.4); with a shift of 0.8 the scalar cost, -11.0 (SE 6.8), stayed within 2 SE."""
    data, labels = _ordinal_groups(250, 1.5, 1)
    table, groups = run_ladder(
        ORDINAL_MODEL, data.assign(g=labels), "g", LADDER_SETTINGS, steps=list(STEPS)[:3]
    )
    table = table.set_index("step")
    assert sorted(groups) == ["a", "b"]
    assert table.loc["scalar", "group.equal"] == "loadings,thresholds"
    assert table.loc["metric", "verdict"] == "holds"
    assert table.loc["scalar", "verdict"].startswith("fails")
    assert (table.loglik == "marginal_is").all() and (table["loglik.mc_se"] < 0.05).all()


@pytest.mark.slow
def test_the_invariance_command_on_an_ordinal_model(tmp_path, capsys):
    """``invariance`` on an ordinal model writes its table (the thresholds step named, LOO on
    the marginal log-likelihood, BRMSEA empty with the reason) and exits 0."""
    data, labels = _ordinal_groups(250, 0.0, 5)
    (tmp_path / "m.lav").write_text(ORDINAL_MODEL)
    data.assign(g=labels).to_csv(tmp_path / "d.csv", index=False)
    args = ["invariance", str(tmp_path / "m.lav"), "--data", str(tmp_path / "d.csv")]
    args += ["--group", "g", "--steps", "metric,scalar", "--out", str(tmp_path / "out")]
    args += ["--chains", "2", "--draws", "300", "--tune", "300"]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "invariance.csv", keep_default_na=False)
    assert list(table.step) == ["metric", "scalar"]
    assert list(table["group.equal"]) == ["loadings", "loadings,thresholds"]
    assert set(table.loglik) == {"marginal_is"} and set(table.brmsea) == {""}
    assert f"Not available: {NO_INDICES_ORDINAL}." in capsys.readouterr().out
