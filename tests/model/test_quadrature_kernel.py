"""The fused adapted-quadrature op against PyTensor's own graph of the same rule, a NumPy
reference of its value, finite differences, its numba implementation, the hand-written exp and
log of its vectorised loops and the compiled-model cache's graph key; the moderator's draw on
cells after a fit (:func:`~bayes_sor.model.quadrature_kernel.draw_on_cells`) against a scalar
reference of its rule and the moments of the density it draws from, and draw by draw through
:func:`~bayes_sor.posterior.scores.affine_moderator_draws`."""

from __future__ import annotations

import zlib
from pathlib import Path

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.gradient import NullTypeGradError
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from test_quadrature import MODERATED_MEDIATION, QUADRATIC, SQUARED, _case

from bayes_sor.data.missing import Patterns
from bayes_sor.model import quadrature_kernel
from bayes_sor.model.quadrature import Layout, respondent_loglik, table_function
from bayes_sor.model.quadrature_kernel import (
    BLOCK,
    AdaptedQuadrature,
    adapted_quadrature,
    draw_on_cells,
    exp,
    log,
)
from bayes_sor.posterior.scores import ADAPTED_CELLS, ADAPTED_SPAN, affine_moderator_draws
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


def _log_density(rows: np.ndarray, u: np.ndarray, degree: int) -> np.ndarray:
    """log p(y_i | w) without its constant at the standardised moderator's values ``u`` (n, K)
    (w = sd u), with log det, in NumPy."""
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    k11, k12, k22, rho, sd = (rows[:, base + c, None] for c in range(5))
    w = sd * u

    def poly(first: int, count: int) -> np.ndarray:
        return sum(rows[:, first + j, None] * w**j for j in range(count))

    quad, x1, x2 = poly(0, nq), poly(nq, nx), poly(nq + nx, nx)
    curve = rho * w * w
    m11, m12, m21, m22 = 1 + w * k12 + curve * k11, w * k22 + curve * k12, w * k11, 1 + w * k12
    det = m11 * m22 - m12 * m21
    v1, v2 = curve * x1 + w * x2, w * x1
    wood = (x1 * (m22 * v1 - m12 * v2) + x2 * (m11 * v2 - m21 * v1)) / det
    return -0.5 * (np.log(det) + quad - wood)


def _reference(rows: np.ndarray, z: np.ndarray, log_weight: np.ndarray, degree: int):
    """The rule's value in NumPy as written before it was vectorised: log det, the log-sum-exp
    shifted by the largest whole term."""
    centre, spread = rows[:, -2, None], rows[:, -1, None]
    u = centre + spread * z
    terms = _log_density(rows, u, degree) + log_weight + np.log(spread) - 0.5 * u * u
    terms += 0.5 * z * z
    top = terms.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(terms - top).sum(axis=1, keepdims=True)))[:, 0]


def _extreme(degree: int) -> np.ndarray:
    """Rows at the edges: a log density of -1e4, node terms e^-1000 and more apart (they
    underflow against the largest, and would overflow against the smallest), a narrow and a
    wide spread, the Woodbury determinant from 0.2 to 300 across the nodes, a polynomial of
    degree 0."""
    rows = _coefficients(np.random.default_rng(7), 6, degree)
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    rows[0, 0] += 2e4
    rows[1, 2] += 4000.0
    rows[2, -1], rows[3, -1] = 1e-3, 3.0
    rows[4, base : base + 5] = [2.0, 1.5, -0.2, 0.8, 2.5]
    rows[5, 1:nq] = 0.0
    return rows


@pytest.mark.parametrize("degree", [2, 3])
@pytest.mark.parametrize("nodes", [4, 6])
def test_value_equals_the_numpy_rule(degree, nodes):
    """Random rows and the edge rows of :func:`_extreme` against the rule written with log det
    (the kernel takes det^-1/2 and shifts by the largest exponent without it)."""
    rows = np.vstack([_coefficients(np.random.default_rng(nodes), 40, degree), _extreme(degree)])
    z, log_weight = AdaptedQuadrature(degree, nodes).rule()
    reference = _reference(rows, z, log_weight, degree)
    value, jac = adapted_quadrature(rows, z, log_weight, degree)
    np.testing.assert_allclose(value, reference, rtol=1e-12)
    assert np.isfinite(jac).all()


@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5])
def test_each_respondent_is_computed_alone_at_any_n(n):
    """Blocks of BLOCK respondents, the last one padded: every row's value and Jacobian as
    from a call with that row alone, at n on and off a multiple of the block."""
    rows = _coefficients(np.random.default_rng(n), n, 2)
    z, log_weight = AdaptedQuadrature(2, 4).rule()
    value, jac = adapted_quadrature(rows, z, log_weight, 2)
    assert value.shape == (n,) and jac.shape == rows.shape
    for i in {0, n // 2, n - 1}:
        alone, alone_jac = adapted_quadrature(rows[i : i + 1], z, log_weight, 2)
        np.testing.assert_allclose(value[i], alone[0], rtol=1e-15)
        np.testing.assert_allclose(jac[i], alone_jac[0], rtol=1e-14, atol=1e-300)


def test_jacobian_at_the_edges_equals_central_differences():
    rows = _extreme(2)
    z, log_weight = AdaptedQuadrature(2, 6).rule()
    _, jac = adapted_quadrature(rows, z, log_weight, 2)
    for j in range(rows.shape[1]):
        step = 1e-6 * np.maximum(1.0, np.abs(rows[:, j]))
        up, down = rows.copy(), rows.copy()
        up[:, j] += step
        down[:, j] -= step
        numeric = (
            adapted_quadrature(up, z, log_weight, 2)[0]
            - adapted_quadrature(down, z, log_weight, 2)[0]
        ) / (2 * step)
        np.testing.assert_allclose(jac[:, j], numeric, rtol=1e-5, atol=1e-6, err_msg=f"col {j}")


def test_wrong_degree_or_width_is_an_error():
    rows = _coefficients(np.random.default_rng(0), 3, 2)
    z, log_weight = AdaptedQuadrature(2, 4).rule()
    with pytest.raises(ValueError, match="degree 2 or 3"):
        adapted_quadrature(rows, z, log_weight, 4)
    with pytest.raises(ValueError, match="columns do not match the degree"):
        adapted_quadrature(rows, z, log_weight, 3)


@numba.njit
def _each(function, x):
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = function(x[i])
    return out


def _ulps(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|value - reference| in units of the reference's last place (the smallest subnormal
    for 0)."""
    return np.abs(value - reference) / np.spacing(np.abs(reference))


def test_exp_is_within_two_ulp_over_its_whole_range():
    """Every binade of results from overflow to underflow (subnormals and 0 included), the
    reduction's boundaries at odd multiples of ln 2 / 2, the specials."""
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.uniform(-750.0, 712.0, 200_000),
            rng.uniform(-1.0, 1.0, 20_000),
            np.arange(-2150, 2050) * np.log(2) / 2,
            [0.0, -0.0, 709.78, 709.79, -708.39, -745.13, -745.14, -1e300, 1e300],
        ]
    )
    with np.errstate(over="ignore"):
        reference = np.exp(x)
    result = _each(exp, x)
    finite = np.isfinite(reference)
    assert _ulps(result[finite], reference[finite]).max() <= 2.0
    assert np.array_equal(np.isinf(result), np.isinf(reference))
    assert (result[x < -745.14] == 0.0).all()
    special = _each(exp, np.array([np.nan, -np.inf, np.inf]))
    assert np.isnan(special[0]) and special[1] == 0.0 and special[2] == np.inf


def test_log_is_within_one_ulp_over_the_positive_doubles():
    """Mantissas in every binade (subnormals included), the neighbours of 1 (where log(1 + f)
    cancels) and of the sqrt(2) split, the specials."""
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.uniform(1.0, 2.0, 200_000) * 2.0 ** rng.integers(-1074, 1024, 200_000),
            1.0 + rng.uniform(-1e-6, 1e-6, 20_000),
            np.nextafter(1.0, [0.0, 2.0]),
            np.sqrt(2.0) * (1.0 + np.arange(-50, 50) * 2.0**-52),
            [5e-324, 2.2250738585072014e-308, np.finfo(float).max],
        ]
    )
    x = x[(x > 0) & np.isfinite(x)]
    reference = np.log(x)
    assert _ulps(_each(log, x), reference).max() <= 1.0
    special = _each(log, np.array([0.0, -1.0, np.inf, np.nan]))
    assert special[0] == -np.inf and np.isnan(special[1]) and special[2] == np.inf
    assert np.isnan(special[3])


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


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, QUADRATIC, SQUARED])
def test_fused_gradient_equals_central_differences_of_the_loglik(model):
    """The whole log-likelihood's gradient through the op (X:X: through the Newton steps
    before it too; without a residual covariance through the table op,
    bayes_sor/model/affine_kernel.py) against central differences of the NumPy rule.
    (PyTensor's Python mode cannot run the X:X graph's own gradient: an addition of more than
    32 terms.)"""
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


def test_the_caches_keys_follow_the_kernels_source(monkeypatch):
    """PyTensor's numba cache and the compiled-model cache know the op by its class and props:
    the kernel module's checksum among them, an edited kernel is compiled anew instead of the
    cached old code running."""
    table = pt.dmatrix("table")
    checksum = zlib.crc32(Path(quadrature_kernel.__file__).read_bytes())
    assert AdaptedQuadrature(2, 4).version == checksum
    before = AdaptedQuadrature(2, 4)
    monkeypatch.setattr(quadrature_kernel, "CACHE_VERSION", checksum + 1)
    edited = AdaptedQuadrature(2, 4)
    assert graph_key([before(table)[0]], [table]) != graph_key([edited(table)[0]], [table])
    assert numba_funcify_and_cache_key(before)[1] != numba_funcify_and_cache_key(edited)[1]


def test_the_jacobian_output_has_no_gradient():
    table = pt.dmatrix("table")
    _, jac = AdaptedQuadrature(2, 6)(table)
    with pytest.raises(NullTypeGradError, match="Jacobian output"):
        pt.grad(jac.sum(), table)


EDGES = np.linspace(-ADAPTED_SPAN, ADAPTED_SPAN, ADAPTED_CELLS + 1)
CELLS = (EDGES[1:] + EDGES[:-1]) / 2
WIDTH = EDGES[1] - EDGES[0]


def _cell_log_density(row: np.ndarray, degree: int) -> np.ndarray:
    """log p(y_i | w) without its constant plus the standardised prior's -u^2/2 at each cell's
    centre u (:func:`_log_density`, with log det as the rule was before it was vectorised)."""
    u = row[-2] + row[-1] * CELLS
    return _log_density(row[None], u[None], degree)[0] - 0.5 * u * u


def _draw_reference(rows: np.ndarray, uniforms: np.ndarray, degree: int):
    """The draw respondent by respondent: the cells' densities shifted by the largest, their
    running sum, the first cell whose sum reaches uniform 0 times the total, uniform 1 within
    it. Also whether the pick is a tie: within 1e-12 of the total from a boundary between
    cells, where the order of a sum's additions may decide."""
    base = 4 * degree + 3
    draws, ties = np.empty(len(rows)), np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        values = _cell_log_density(row, degree)
        running = np.cumsum(np.exp(values - values.max()))
        pick = uniforms[i, 0] * running[-1]
        cell = next((c for c in range(len(CELLS)) if running[c] >= pick), len(CELLS) - 1)
        # a pick of 0 takes the first cell, one of the total the last: neither by rounding
        ties[i] = pick > 0 and np.abs(running[:-1] - pick).min() <= 1e-12 * running[-1]
        sd, centre, spread = row[base + 4 : base + 7]
        draws[i] = sd * (centre + spread * (CELLS[cell] + WIDTH * (uniforms[i, 1] - 0.5)))
    return draws, ties


def _rows(seed: int, n: int, degree: int) -> np.ndarray:
    """``n`` random rows (:func:`_coefficients`) whose Woodbury determinant is positive on
    every cell, as a model's is (det M = |Sigma(w)| / |Sigma0|)."""
    rows = _coefficients(np.random.default_rng(seed), 2 * n + 10, degree)
    with np.errstate(invalid="ignore"):
        positive = [np.isfinite(_cell_log_density(row, degree)).all() for row in rows]
    return rows[positive][:n]


@pytest.mark.parametrize("degree", [2, 3])
@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK + 1, 3 * BLOCK + 5])
def test_draws_equal_the_scalar_rule_at_any_n(degree, n):
    """Blocks of BLOCK respondents, the last one padded: every draw as the rule written per
    respondent, at n off a multiple of the block, the edge rows of :func:`_extreme` (a log
    density of -1e4, cells e^-1000 and more apart, a posterior 1e-3 and one 3 times as wide as
    the prior, all mass in the first or the last cell) among them and uniforms at 0 and just
    below 1."""
    # densities falling and rising by ~1000 nats a cell: all mass in the first or last cell
    steep = _rows(99, 2, degree)
    steep[:, 1] = [2e4, -2e4]
    rows, extreme = _rows(n, n, degree), np.vstack([_extreme(degree), steep])
    if n > 2 * len(extreme):  # in the first block and in the padded last one
        rows[: len(extreme)] = rows[-len(extreme) :] = extreme
    uniforms = np.random.default_rng(n + 1).uniform(size=(n, 2))
    if n > 1:
        uniforms[-1] = [0.0, 1.0 - 2.0**-53]
        uniforms[0, 0] = 1.0 - 2.0**-53
    reference, ties = _draw_reference(rows, uniforms, degree)
    draws = draw_on_cells(rows, CELLS, WIDTH, uniforms, degree)
    assert draws.shape == (n,) and not ties.all()
    np.testing.assert_allclose(draws[~ties], reference[~ties], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("degree", [2, 3])
def test_draws_have_the_cells_density_moments(degree):
    """Each row drawn 4000 times: the draws' mean and SD are those of the density on the cells
    (a cell's mass, uniform within it: variance width^2 / 12 per cell), for a typical
    respondent, a narrow posterior (within one or two cells) and a wide one."""
    rows = _rows(11, 3, degree)
    base = 4 * degree + 3
    rows[1, base + 6], rows[2, base + 6] = 0.05, 2.0
    copies = 4000
    draws = draw_on_cells(
        np.repeat(rows, copies, axis=0),
        CELLS,
        WIDTH,
        np.random.default_rng(12).uniform(size=(3 * copies, 2)),
        degree,
    ).reshape(3, copies)
    for row, drawn in zip(rows, draws, strict=True):
        sd, centre, spread = row[base + 4 : base + 7]
        mass = np.exp(_cell_log_density(row, degree))
        mass /= mass.sum()
        mean = CELLS @ mass
        scale = sd * spread * np.sqrt((CELLS - mean) ** 2 @ mass + WIDTH**2 / 12)
        assert abs(drawn.mean() - sd * (centre + spread * mean)) < 4 * scale / np.sqrt(copies)
        assert abs(drawn.std() / scale - 1) < 4 / np.sqrt(2 * copies)


def test_draw_with_a_wrong_degree_or_width_is_an_error():
    rows = _rows(0, 3, 2)
    uniforms = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="degree 2 or 3"):
        draw_on_cells(rows, CELLS, WIDTH, uniforms, 4)
    with pytest.raises(ValueError, match="columns do not match the degree"):
        draw_on_cells(rows, CELLS, WIDTH, uniforms, 3)


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, SQUARED])
def test_moderator_draws_are_the_rule_on_each_draws_table(model):
    """Per posterior draw, chain by chain: the likelihood's coefficient table at that draw
    (with X:X centred by the Newton steps), two uniform numbers per respondent from the
    generator in that order, the rule of :func:`_draw_reference`: a seed gives the same scores as
    before the draw was vectorised (missing answers among the respondents)."""
    tab, par, y = _case(model, n=45, seed=8)
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    patterns = Patterns.of(y)
    draws = par + 0.03 * np.random.default_rng(9).normal(size=(2, 3, len(par)))
    ours = affine_moderator_draws(rep, layout, draws, y, patterns, np.random.default_rng(10))
    table = table_function(rep, layout, y, patterns)
    rng = np.random.default_rng(10)
    for chain, draw in np.ndindex(2, 3):
        uniforms = rng.uniform(size=(len(y), 2))
        expected, ties = _draw_reference(table(draws[chain, draw]), uniforms, layout.degree)
        assert not ties.any()
        np.testing.assert_allclose(ours[chain, draw], expected, rtol=1e-12)
