"""The affine layout's coefficient table as fused ops (bayes_sor/model/affine_kernel.py): its
table against :func:`affine_terms`, its hand-written reverse pass against central
differences, the log-likelihood's gradient through it against PyTensor's graph of the same rule,
its numba implementation against its Python one."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import NullTypeGradError
from pytensor.graph.traversal import ancestors
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from test_quadrature import MODERATED_MEDIATION, SQUARED, _case
from test_quadrature_kernel import PYTHON

from bayes_sor.data.missing import Patterns
from bayes_sor.model import affine_kernel
from bayes_sor.model.affine_kernel import AffineTable, affine_table, affine_table_grad
from bayes_sor.model.quadrature import Affine, Layout, affine_basis, affine_terms, respondent_loglik
from bayes_sor.sampling.graph_key import graph_key
from bayes_sor.spec.matrices import representation


def _inputs(model: str, seed: int = 3, missing: bool = True):
    tab, par, y = _case(model, n=25, seed=seed, missing=missing)
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    point = par + 0.05 * np.random.default_rng(seed).normal(size=len(par))
    basis = affine_basis(np, point, rep, layout)
    patterns = Patterns.of(y)
    arrays = (np.nan_to_num(y), patterns.mask.astype(float), patterns.index)
    return tab, rep, layout, point, y, basis, arrays


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, SQUARED])
@pytest.mark.parametrize("missing", [True, False])
def test_table_equals_affine_terms(model, missing):
    """Every coefficient and constant as :func:`affine_terms` computes them (NumPy), with several
    missingness patterns and with one."""
    _, rep, layout, point, y, basis, arrays = _inputs(model, missing=missing)
    terms = affine_terms(np, point, rep, layout, y)
    expected = Affine.table(terms, terms.centre, terms.spread)
    table, constant, _, _ = affine_table(
        *arrays, basis.onto, basis.nu, np.diag(basis.theta), basis.sd, basis.rho, basis.degree
    )
    assert (len(Patterns.of(y).mask) > 1) == missing
    np.testing.assert_allclose(table, expected.eval(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(constant, np.broadcast_to(terms.constant, len(y)), rtol=1e-12)


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, SQUARED])
def test_reverse_pass_equals_central_differences(model):
    """The cotangents of onto, nu, Theta's diagonal, sd and rho for a random cotangent of the
    table and the constants."""
    _, _, _, _, _, basis, arrays = _inputs(model)
    theta = np.diag(basis.theta).copy()
    inputs = [basis.onto.copy(), basis.nu.copy(), theta, float(basis.sd), float(basis.rho)]
    rng = np.random.default_rng(1)
    table, constant, resid, projected = affine_table(*arrays, *inputs, basis.degree)
    g_table, g_constant = rng.normal(size=table.shape), rng.normal(size=constant.shape)
    grads = affine_table_grad(
        arrays[1],
        arrays[2],
        inputs[0],
        theta,
        inputs[3],
        resid,
        projected,
        g_table,
        g_constant,
        basis.degree,
    )

    def loss(values: list) -> float:
        t, c, _, _ = affine_table(*arrays, *values, basis.degree)
        return float(np.sum(t * g_table) + np.sum(c * g_constant))

    step = 1e-6
    for j, value in enumerate(inputs):
        flat = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
        numeric = np.empty(flat.size)
        for e in range(flat.size):
            up, down = flat.copy(), flat.copy()
            up[e] += step
            down[e] -= step
            shape = np.shape(value)
            numeric[e] = (
                loss([*inputs[:j], up.reshape(shape) if shape else up[0], *inputs[j + 1 :]])
                - loss([*inputs[:j], down.reshape(shape) if shape else down[0], *inputs[j + 1 :]])
            ) / (2 * step)
        np.testing.assert_allclose(
            np.ravel(grads[j]), numeric, rtol=1e-6, atol=1e-6, err_msg=f"input {j}"
        )


def _loglik(model: str):
    tab, par, y = _case(model, n=25, seed=3)
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    p = pt.dvector("p")
    logp = respondent_loglik(pt, p, rep, layout, y)
    assert any(isinstance(v.owner.op, AffineTable) for v in ancestors([logp]) if v.owner)
    return logp, p, par, lambda q: respondent_loglik(np, q, rep, layout, y)


def test_numba_implementation_equals_perform():
    logp, p, par, _ = _loglik(MODERATED_MEDIATION)
    outputs = [logp, pt.grad(logp.sum(), p)]
    compiled = pytensor.function([p], outputs, mode="NUMBA")
    python = pytensor.function([p], outputs, mode=PYTHON)
    for a, b in zip(compiled(par), python(par), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _table_op(op: AffineTable, onto, vector):
    return op(np.zeros((3, 2)), np.ones((1, 2)), np.zeros(3, int), onto, vector, vector, 1.0, 0.5)


def test_kept_outputs_have_no_gradient():
    onto, vector = pt.dmatrix("onto"), pt.dvector("v")
    outputs = _table_op(AffineTable(2), onto, vector)
    with pytest.raises(NullTypeGradError, match="projections"):
        pt.grad(outputs[3].sum(), onto)


def test_the_caches_keys_follow_the_degree_and_the_kernels_source(monkeypatch):
    """The compiled-model cache and PyTensor's numba cache know the op by its class and props:
    another degree, or an edited kernel module (its checksum), is compiled anew."""
    onto, vector = pt.dmatrix("onto"), pt.dvector("v")

    def key(op: AffineTable) -> str:
        return graph_key([_table_op(op, onto, vector)[0]], [onto, vector])

    before = AffineTable(2)
    assert before.version == zlib.crc32(Path(affine_kernel.__file__).read_bytes())
    monkeypatch.setattr(affine_kernel, "CACHE_VERSION", before.version + 1)
    edited = AffineTable(2)
    assert key(before) != key(AffineTable(3))
    assert key(before) != key(edited)
    assert numba_funcify_and_cache_key(before)[1] != numba_funcify_and_cache_key(edited)[1]
