"""The fused adapted-quadrature op against PyTensor's own graph of the same rule, finite
differences, its numba implementation and the compiled-model cache's graph key."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.gradient import NullTypeGradError
from test_quadrature import MODERATED_MEDIATION, QUADRATIC, _case

from bayes_sor.model.quadrature import Layout, respondent_loglik
from bayes_sor.model.quadrature_kernel import AdaptedQuadrature, adapted_quadrature
from bayes_sor.sampling.graph_key import graph_key
from bayes_sor.spec.matrices import representation

#: PyTensor's Python implementations, quick to compile (fused elementwise ops of more than 32
#: operands have none)
PYTHON = get_mode("FAST_COMPILE").excluding("fusion")


def _coefficients(rng: np.random.Generator, n: int, degree: int) -> np.ndarray:
    """Random rows of a respondent's coefficients whose Woodbury determinant stays positive:
    small polynomial and k entries, a positive spread."""
    nq, nx = 2 * degree + 1, degree + 1
    rows = 0.3 * rng.normal(size=(n, nq + 2 * nx + 7))
    rows[:, 0] += 3.0
    rows[:, nq + 2 * nx : nq + 2 * nx + 3] = rng.uniform(0.05, 0.4, size=(n, 3))  # k11, k12, k22
    rows[:, -4:-2] = rng.uniform(0.1, 0.5, size=(n, 2))  # rho, sd
    rows[:, -1] = rng.uniform(0.3, 1.0, size=n)  # spread
    return rows


@pytest.mark.parametrize("degree", [2, 3])
def test_jacobian_equals_central_differences(degree):
    rng = np.random.default_rng(degree)
    rows = _coefficients(rng, 5, degree)
    z, log_weight = AdaptedQuadrature(degree, 6).rule()
    value, jac = adapted_quadrature(rows, z, log_weight, degree)
    step = 1e-6
    for j in range(rows.shape[1]):
        up, down = rows.copy(), rows.copy()
        up[:, j] += step
        down[:, j] -= step
        numeric = (
            adapted_quadrature(up, z, log_weight, degree)[0]
            - adapted_quadrature(down, z, log_weight, degree)[0]
        ) / (2 * step)
        np.testing.assert_allclose(jac[:, j], numeric, rtol=1e-6, atol=1e-7, err_msg=f"col {j}")
    assert np.all(np.isfinite(value))


def test_numba_implementation_equals_perform():
    rows = _coefficients(np.random.default_rng(0), 7, 2)
    table = pt.dmatrix("table")
    outputs = AdaptedQuadrature(2, 6)(table)
    compiled = pytensor.function([table], outputs, mode="NUMBA")
    python = pytensor.function([table], outputs, mode=PYTHON)
    for a, b in zip(compiled(rows), python(rows), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def _compiled(model: str, fused: bool):
    tab, par, y = _case(model, n=25, seed=3)
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    p = pt.dvector("p")
    logp = respondent_loglik(pt, p, rep, layout, y, fused=fused)
    function = pytensor.function([p], [logp, pt.grad(logp.sum(), p)], mode=PYTHON)
    return function, lambda q: respondent_loglik(np, q, rep, layout, y), par


def test_fused_op_equals_the_pytensor_graph_of_the_same_rule():
    """Values and gradients at random parameters, with missing answers (per-respondent Sigma0
    patterns)."""
    fused, numpy, par = _compiled(MODERATED_MEDIATION, True)
    graph, _, _ = _compiled(MODERATED_MEDIATION, False)
    rng = np.random.default_rng(4)
    for _ in range(3):
        point = par + 0.05 * rng.normal(size=len(par))
        (value, grad), (reference, reference_grad) = fused(point), graph(point)
        assert np.isfinite(value).all()
        np.testing.assert_allclose(value, reference, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(grad, reference_grad, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(value, numpy(point), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, QUADRATIC])
def test_fused_gradient_equals_central_differences_of_the_loglik(model):
    """The whole log-likelihood's gradient through the op (X:X: through the Newton steps
    before it too) against central differences of the NumPy rule. (PyTensor's Python mode
    cannot run the X:X graph's own gradient: an addition of more than 32 terms.)"""
    fused, numpy, par = _compiled(model, True)
    point = par + 0.02 * np.random.default_rng(5).normal(size=len(par))
    value, grad = fused(point)
    assert np.isfinite(value).all()
    np.testing.assert_allclose(value, numpy(point), rtol=1e-10, atol=1e-9)
    step = 1e-5
    numeric = [
        (numpy(point + step * e).sum() - numpy(point - step * e).sum()) / (2 * step)
        for e in np.eye(len(par))
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


def test_graph_key_tells_the_op_by_its_node_count():
    """The compiled-model cache keys ops by class and __props__: the same op gives the same key,
    another node count another one (a cached model compiled for 6 nodes is not reused for 8)."""
    table = pt.dmatrix("table")

    def key(nodes: int) -> str:
        return graph_key([AdaptedQuadrature(2, nodes)(table)[0]], [table])

    assert key(6) == key(6)
    assert key(6) != key(8)


def test_the_jacobian_output_has_no_gradient():
    table = pt.dmatrix("table")
    _, jac = AdaptedQuadrature(2, 6)(table)
    with pytest.raises(NullTypeGradError, match="Jacobian output"):
        pt.grad(jac.sum(), table)
