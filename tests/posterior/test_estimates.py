"""std.all: the same standardised solution whatever the identification."""

import numpy as np
import pytest

from bayes_sor.posterior.estimates import standardized_draws
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

MODEL = """
X =~ x1 + x2 + x3
Y =~ y1 + y2 + y3
Y ~ X
"""


def _values(pt, values):
    params = pt.parameters.reset_index(drop=True)
    return np.array(
        [values.get(n, r.value) for n, r in zip(pt.names, params.itertuples(), strict=True)],
        dtype=float,
    )


def test_std_all_is_identical_under_std_lv_and_marker_scaling():
    std_lv = build_partable(MODEL)
    marker = build_partable(MODEL, identification="marker")
    lam_x, lam_y, beta = np.array([0.8, 0.6, 0.7]), np.array([0.9, 0.5, 0.4]), 0.5
    theta = {f"{v}~~{v}": 0.4 for v in std_lv.indicators}
    a = {
        **{f"X=~x{i + 1}": lam_x[i] for i in range(3)},
        **{f"Y=~y{i + 1}": lam_y[i] for i in range(3)},
        "Y~X": beta,
        **theta,
    }
    # The same model in the marker metric: latent scales become the first loadings.
    var_y = beta**2 + 1.0
    b = {
        **{f"X=~x{i + 1}": lam_x[i] / lam_x[0] for i in range(3)},
        **{f"Y=~y{i + 1}": lam_y[i] / lam_y[0] for i in range(3)},
        "Y~X": beta * lam_y[0] / lam_x[0],
        "X~~X": lam_x[0] ** 2,
        "Y~~Y": lam_y[0] ** 2 * 1.0,
        **theta,
    }
    std_a = standardized_draws(std_lv, representation(std_lv), _values(std_lv, a)[None])
    std_b = standardized_draws(marker, representation(marker), _values(marker, b)[None])
    for name in ["X=~x2", "Y=~y3", "Y~X", "x1~~x1", "Y~~Y"]:
        assert std_a[0, std_lv.names.index(name)] == pytest.approx(
            std_b[0, marker.names.index(name)], rel=1e-9
        ), name
    # Hand check of one value: std.all of Y~X is beta sd(X) / sd(Y).
    assert std_a[0, std_lv.names.index("Y~X")] == pytest.approx(beta / np.sqrt(var_y))


def test_std_all_of_an_interaction_uses_the_product_sd():
    pt = build_partable("X =~ x1+x2+x3\nW =~ w1+w2+w3\nY =~ y1+y2+y3\nY ~ X + W + X:W")
    par = _values(
        pt,
        {
            **{n: 0.7 for n in pt.names if "=~" in n},
            **{f"{v}~~{v}": 0.5 for v in pt.indicators},
            "X~~W": 0.3,
            "Y~X": 0.2,
            "Y~W": 0.1,
            "Y~X:W": 0.25,
        },
    )
    std = standardized_draws(pt, representation(pt), par[None])
    var_product = 1 * 1 + 0.3**2
    var_y = 0.2**2 + 0.1**2 + 2 * 0.2 * 0.1 * 0.3 + 0.25**2 * var_product + 1
    expected = 0.25 * np.sqrt(var_product) / np.sqrt(var_y)
    assert std[0, pt.names.index("Y~X:W")] == pytest.approx(expected)
