"""Power-scaling prior sensitivity: the NumPy log prior and the flags it leads to."""

import numpy as np
import pandas as pd
import pytest
from fakes import laplace_draws, truth, write_run
from model_points import value_function
from ordinal_fakes import posterior_scores

from bayes_sor.checks import loglik as loglik_module
from bayes_sor.checks.sensitivity import prior_terms, sensitivity
from bayes_sor.cli.main import main
from bayes_sor.model.build import pymc_model
from bayes_sor.model.simulate import simulate
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import add_thresholds, build_partable

MEDIATION = """
X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
M ~ {a}X
Y ~ b*M
x1 ~~ m1
"""


@pytest.mark.parametrize("residual", ["", 'prior("normal(0,0.2)")*'])
def test_numpy_log_prior_matches_the_pymc_model(residual):
    """Differences of log prior between two points equal those of the PyMC model's priors
    (constants aside): [sd] priors, halfnormal first loadings, beta residual correlations,
    and a normal prior on a residual correlation (evaluated at (rho + 1) / 2 before)."""
    pt = build_partable(MEDIATION.format(a="a*").replace("x1 ~~ m1", f"x1 ~~ {residual}m1"))
    data = simulate(pt, truth(pt, {"x1~~m1": 0.1}), 50, seed=0)
    pymc, numpy, _ = _prior_differences(pt, pymc_model(pt, data).model)
    assert pymc == pytest.approx(numpy, abs=1e-8)


def _prior_differences(pt, model) -> tuple[float, float, list[str]]:
    """The change of the model's log prior and of :func:`prior_terms`' sum between two
    jittered points, and the terms' names. Approximate invariance's raw deviations are
    centred at each point: the direction ``par`` does not carry stays at 0."""
    logp = model.compile_logp(vars=model.free_RVs, jacobian=False)
    par_of = value_function(model, [model["par"]])
    rng = np.random.default_rng(1)
    points = []
    for _ in range(2):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
        if "approximate_deviations_raw" in point:
            z = point["approximate_deviations_raw"]
            point["approximate_deviations_raw"] = z - z.mean(axis=0)
        terms, names = prior_terms(pt, par_of(point)[0][None])
        points.append((float(logp(point)), terms[0].sum()))
    return points[1][0] - points[0][0], points[1][1] - points[0][1], names


def test_an_informative_prior_against_the_data_is_flagged(tmp_path):
    model = MEDIATION.format(a='prior("normal(0,0.05)")*')
    pt = build_partable(model)
    data = simulate(pt, truth(pt, {"M~X": 0.5, "Y~M": 0.5, "x1~~m1": 0.0}), 150, seed=2)
    run = write_run(tmp_path / "run", pt, laplace_draws(pt, data, 1000, prior=True), data)
    assert main(["sensitivity", str(run)]) == 0
    table = pd.read_csv(
        run / "sensitivity.csv", keep_default_na=False, na_values={"prior_sensitivity": [""]}
    ).set_index("quantity")
    assert table.loc["M~X", "prior_sensitivity"] > 0.05
    assert "prior" in table.loc["M~X", "diagnosis"]
    assert table.loc["Y~M", "prior_sensitivity"] < 0.05
    assert table.loc["Y~M", "diagnosis"] == "" and not table.loc["Y~M", "prior_dependent"]
    assert "## Prior sensitivity (power-scaling)" in (run / "report.md").read_text()


def test_a_conclusion_that_flips_under_a_stronger_prior_is_flagged():
    """Posterior N(0.11, 0.05) under a N(0, 0.05) prior: its 95% interval just excludes 0;
    the prior raised to 1.25 pulls the posterior to N(0.088, 0.045), whose interval does not."""
    import xarray as xr

    from bayes_sor.checks.sensitivity import _verdict, conclusions

    x = np.random.default_rng(0).normal(0.11, 0.05, (4, 20000))
    posterior = xr.Dataset(
        {"path": (("chain", "draw", "path_id"), x[..., None])}, coords={"path_id": ["M~X"]}
    )
    log_prior = xr.DataArray(
        (-0.5 * (x / 0.05) ** 2)[..., None], dims=("chain", "draw", "prior_term")
    )
    row = conclusions(posterior, log_prior, 0.95).iloc[0]
    assert row["ci.lower"] > 0 > row["ci.lower_alpha1.25"]
    dependent, why = _verdict(row, (0.8, 1.25))
    assert dependent and "alpha 1.25" in why


# ---- multiple groups -----------------------------------------------------------------------------
APPROXIMATE = "---\napproximate: {loadings: 0.05, intercepts: 0.1}\n---\nF =~ y1 + y2 + y3 + y4\n"


def test_a_multiple_group_prior_is_the_pymc_models_joint_prior():
    """Two groups, loadings equal (one term each), approximately equal intercepts (common
    value under the first group's prior, each group's deviation under N(0, 0.1)), each
    group's own residual variances and a residual correlation per group: log prior
    differences between two points equal the PyMC model's. The points' raw deviations have
    mean 0 across the groups, the direction ``par`` does not carry (its factor cancels)."""
    pt = with_groups(
        build_partable(APPROXIMATE.replace("{loadings: 0.05, ", "{") + "y1 ~~ y2\n"),
        ["a", "b"],
        ["loadings"],
    )
    one = build_partable("F =~ y1 + y2 + y3 + y4\n")
    data = simulate(one, truth(one), 80, seed=1)
    model = pymc_model(pt, data, groups=np.repeat(["a", "b"], 40)).model
    pymc, numpy, names = _prior_differences(pt, model)
    assert "y1~1 (deviation) [b]" in names and "y1~1 (common value)" in names
    assert sum(n.startswith("F=~y2") for n in names) == 1  # shared by the groups: once
    assert pymc == pytest.approx(numpy, abs=1e-8)


def _group_draws(text: str, data: pd.DataFrame, informative: str | None) -> np.ndarray:
    """Laplace draws of one group's posterior (``informative``: a normal(0, 0.05) prior on
    that path)."""
    pt = build_partable(text)
    if informative:
        pt.table.loc[pt.table.lhs + pt.table.op + pt.table.rhs == informative, "prior"] = (
            "normal(0,0.05)"
        )
    return laplace_draws(pt, data, 1000, prior=True)


def test_an_informative_prior_on_one_groups_path_is_flagged_in_that_group_only(tmp_path):
    """A configural two-group mediation model (the groups' posteriors independent, so each
    group's Laplace draws are its posterior) with normal(0, 0.05) on group b's M ~ X against
    data saying 0.5: that path is flagged as prior sensitive, group a's M ~ X and both groups'
    Y ~ M are not; the table names each quantity's group."""
    text = MEDIATION.format(a="").replace("b*M", "M")  # no label: each group its own path
    one = build_partable(text)
    values = {"M~X": 0.5, "Y~M": 0.5, "x1~~m1": 0.0}
    data = {g: simulate(one, truth(one, values), 150, seed=s) for g, s in (("a", 2), ("b", 3))}
    draws = {"a": _group_draws(text, data["a"], None), "b": _group_draws(text, data["b"], "M~X")}
    pt = with_groups(build_partable(text), ["a", "b"])
    pt.table.loc[(pt.table.lhs == "M") & (pt.table.rhs == "X") & (pt.table.group == 2), "prior"] = (
        "normal(0,0.05)"
    )
    # each group's draws into its rows; rows the one-group table lacks (latent means) fixed
    par = np.broadcast_to(truth(pt), (*draws["a"].shape[:2], len(pt.names))).copy()
    for k, name in enumerate(pt.names):
        group, base = ("b", name[:-3]) if name.endswith(".g2") else ("a", name)
        if base in one.names:
            par[..., k] = draws[group][..., one.names.index(base)]
    labels = np.repeat(["a", "b"], 150)
    run = write_run(
        tmp_path / "run",
        pt,
        par,
        pd.concat([data["a"], data["b"]], ignore_index=True),
        groups=labels,
    )
    assert main(["sensitivity", str(run)]) == 0
    table = pd.read_csv(
        run / "sensitivity.csv", keep_default_na=False, na_values={"prior_sensitivity": [""]}
    ).set_index("quantity")
    assert table.loc["M~X.g2", "group"] == "b" and table.loc["M~X", "group"] == "a"
    assert table.loc["M~X.g2", "prior_sensitivity"] > 0.05
    assert "prior" in table.loc["M~X.g2", "diagnosis"]
    for quantity in ("M~X", "Y~M", "Y~M.g2"):
        assert table.loc[quantity, "prior_sensitivity"] < 0.05, quantity
        assert table.loc[quantity, "diagnosis"] == "", quantity


def test_an_integrated_loglik_of_fewer_draws_thins_the_posterior_and_prior_alike(
    tmp_path, monkeypatch
):
    """Ordinal items with stored scores: the importance-sampled log-likelihood is integrated
    at every k-th draw; power-scaling pairs it with the same draws' prior and quantities
    (ArviZ refuses groups of different draws)."""
    items = ["u1", "u2", "u3", "u4"]
    pt = add_thresholds(
        build_partable("F =~ u1 + u2 + u3 + u4", ordinal="all"), dict.fromkeys(items, 3)
    )
    cuts = {f"{item}|{t}": v for item in items for t, v in (("t1", -0.5), ("t2", 0.6))}
    par = truth(pt, cuts, loading=1.0, variance=1.0)
    data = simulate(pt, par, 60, seed=6)
    draws = par * (1 + 0.03 * np.random.default_rng(7).standard_normal((2, 120, len(par))))
    scores = posterior_scores(
        representation(pt),
        draws.reshape(240, -1),
        data.to_numpy().astype(int) - 1,
        np.random.default_rng(8),
    )
    run = write_run(tmp_path / "run", pt, draws, data, latent_scores=scores.reshape(2, 120, 60, 1))
    monkeypatch.setattr(loglik_module, "IS_MAX_DRAWS", 80)
    table, notes = sensitivity(load_run(run))
    assert "every 3th draw of each chain (the log-likelihood's)" in notes
    assert table.prior_sensitivity.notna().all() and table.likelihood_sensitivity.notna().all()
