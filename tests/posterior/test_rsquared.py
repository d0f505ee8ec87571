"""R^2 of endogenous constructs from the model-implied variances, against closed forms."""

import numpy as np
from fakes import truth
from sem_models import MODERATED

from bayes_sor.posterior.rsquared import r_squared, r_squared_draws
from bayes_sor.spec.partable import build_partable


def test_r_squared_of_a_moderated_mediation_matches_the_closed_form():
    pt = build_partable(MODERATED)  # std.lv: Var(X) = Var(W) = 1
    a, b, c, e, d, phi, psi_m, psi_y = 0.6, 0.5, 0.2, 0.3, 0.25, 0.4, 0.64, 0.5
    par = truth(
        pt,
        {
            "M~X": a,
            "Y~M": b,
            "Y~X": c,
            "Y~W": e,
            "Y~M:W": d,
            "X~~W": phi,
            "M~~M": psi_m,
            "Y~~Y": psi_y,
        },
    )
    var_m = a**2 + psi_m
    cov_mw = a * phi
    linear = c**2 + b**2 * var_m + e**2 + 2 * c * b * a + 2 * c * e * phi + 2 * b * e * cov_mw
    product = var_m * 1.0 + cov_mw**2  # Var(M W) of normal M, W (uncorrelated with the rest)
    explained_y = linear + d**2 * product
    r2 = r_squared_draws(pt, par[None, None, :])
    assert set(r2) == {"M", "Y"}
    np.testing.assert_allclose(r2["M"], a**2 / var_m)
    np.testing.assert_allclose(r2["Y"], explained_y / (explained_y + psi_y))


def test_r_squared_summary_has_mean_and_interval_per_endogenous_construct():
    pt = build_partable(MODERATED)
    rng = np.random.default_rng(4)
    base = truth(pt)
    draws = np.tile(base, (2, 300, 1))
    draws[..., pt.names.index("M~X")] = rng.normal(0.6, 0.1, (2, 300))
    table = r_squared(pt, draws, 0.9)
    assert list(table.construct) == ["M", "Y"]
    m = table.set_index("construct").loc["M"]
    direct = r_squared_draws(pt, draws)["M"]
    assert m["mean"] == np.mean(direct)
    assert m["ci.lower"] == np.quantile(direct, 0.05) < m["mean"] < m["ci.upper"]
    cfa = build_partable("F =~ x1 + x2 + x3")
    assert r_squared(cfa, truth(cfa)[None, None, :]).empty
