"""Power-scaling prior sensitivity: the NumPy log prior and the flags it leads to."""

import numpy as np
import pandas as pd
import pytest
from fakes import laplace_draws, truth, write_run

from bayes_sor.checks.sensitivity import prior_terms
from bayes_sor.cli.main import main
from bayes_sor.model.build import pymc_model
from bayes_sor.model.simulate import simulate
from bayes_sor.spec.partable import build_partable

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
    model = pymc_model(pt, data).model
    logp = model.compile_logp(vars=model.free_RVs, jacobian=False)
    par = model.replace_rvs_by_values([model["par"]])[0]
    par_of = model.compile_fn(par, inputs=model.value_vars, point_fn=True)
    rng = np.random.default_rng(1)
    points = []
    for _ in range(2):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
        points.append((float(logp(point)), prior_terms(pt, par_of(point)[None])[0].sum()))
    assert points[1][0] - points[0][0] == pytest.approx(points[1][1] - points[0][1], abs=1e-8)


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
