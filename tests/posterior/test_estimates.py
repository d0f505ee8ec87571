"""std.all: the same standardised solution whatever the identification."""

import numpy as np
import pytest
import xarray as xr

from bayes_sor.posterior.estimates import parameter_estimates, standardized_draws
from bayes_sor.spec.groups import with_groups
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


def test_estimates_of_two_groups_have_a_group_column_and_each_groups_std_all():
    """Each group is standardised by its own moments: a second group whose latent variance
    is 4 has its own std.all of the same (equal) loading, the one-group formula's value at
    that variance."""
    one = build_partable(MODEL)
    pt = with_groups(one, ["A", "B"], ["loadings"])
    values = {f"{v}~~{v}": 0.4 for v in one.indicators} | {f"{v}~1": 3.0 for v in one.indicators}
    values |= {"X=~x1": 0.8, "X=~x2": 0.6, "X=~x3": 0.7, "Y=~y1": 0.9, "Y=~y2": 0.5}
    values |= {"Y=~y3": 0.4, "Y~X": 0.5}
    second = {f"{k}.g2": v for k, v in values.items()} | {"X~~X.g2": 4.0, "Y~~Y.g2": 1.0}
    par = _values(pt, values | second)
    posterior = xr.Dataset(
        {"par": (("chain", "draw", "param"), np.broadcast_to(par, (2, 5, len(par))).copy())},
        coords={"param": pt.names},
    )
    est = parameter_estimates(pt, posterior)
    assert list(est.columns[:5]) == ["lhs", "op", "rhs", "label", "group"]
    loading = est[(est.lhs == "X") & (est.op == "=~") & (est.rhs == "x2")].set_index("group")
    assert loading.loc["A", "free"] == loading.loc["B", "free"]
    expected = 0.6 * 2.0 / np.sqrt(0.36 * 4.0 + 0.4)
    assert loading.loc["B", "std.all"] == pytest.approx(expected, rel=1e-9)
    assert loading.loc["A", "std.all"] == pytest.approx(0.6 / np.sqrt(0.36 + 0.4), rel=1e-9)
