"""The data part of the quadrature likelihood's affine layout as one PyTensor op and its reverse.

:func:`bayes_sor.model.quadrature.affine_terms` turns the model's matrices into a table of
coefficients per respondent (:func:`~bayes_sor.model.quadrature_kernel.columns`): it projects
the answers onto Theta^-1 [V, E, U0] (N x p x k), factors H = I + U0' Theta^-1 U0 per pattern
(Woodbury for Sigma0^-1) and combines the projections into the polynomials' coefficients. As
PyTensor's graph that is some 270 operations on arrays of N or a few dozen numbers, forward and
backward, each of which costs its call more than its arithmetic: ~0.17 of Study A's 0.2 ms per
gradient. Its arithmetic is two products of the N x p answers with p x k matrices (one forward,
one backward) and a few dozen numbers per respondent. :class:`AffineTable` does the forward
part in one numba function, :class:`AffineTableGrad` the reverse pass, written by hand.

It takes the small matrices that :func:`bayes_sor.model.quadrature.affine_basis` builds from
the parameters (``onto`` = [V_1 .. V_degree, L1, U0 R1, U0], ``nu``, Theta's diagonal, the
moderator's prior SD and R1'R1), so that their derivatives flow on through PyTensor's graph;
a residual covariance (Theta not diagonal) keeps PyTensor's graph. The answers are an input
(SBC swaps in new answers with the same missingness), the missingness patterns constant inputs.
"""

from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic

from bayes_sor.data.missing import LOG_2PI
from bayes_sor.model.quadrature_kernel import module_version

#: this module's :func:`~bayes_sor.model.quadrature_kernel.module_version`, a prop of its ops
CACHE_VERSION = module_version(__file__)


@numba.njit(cache=True)
def table_width(degree: int) -> int:
    """Columns of the coefficient table (:func:`~bayes_sor.model.quadrature_kernel.columns`)."""
    return 4 * degree + 10


@numba.njit(cache=True)
def pattern_factors(mask, onto, theta, degree: int):
    """Per pattern (K), from onto (p, k) and Theta's diagonal: M = onto' Theta_oo^-1 onto
    (K, k, k), H^-1 with H = I + M_uu (K, r, r), S = H^-1 M_uv (K, r, w), the Gram matrix
    G = M_vv - M_vu S (K, w, w) of [V, E] under Sigma0^-1, and log|Theta_oo| + log|H| +
    answered log 2 pi (K,); w = degree + 2 columns [V, E] before U0's r."""
    patterns = mask.shape[0]
    k = onto.shape[1]
    w = degree + 2
    r = k - w
    m = np.empty((patterns, k, k))
    h_inv = np.empty((patterns, r, r))
    solved = np.empty((patterns, r, w))
    gram = np.empty((patterns, w, w))
    constant = np.empty(patterns)
    for g in range(patterns):
        weighted = onto * (mask[g] / theta)[:, None]
        m[g] = weighted.T @ onto
        h = m[g, w:, w:] + np.eye(r)
        low = np.linalg.cholesky(h)
        h_inv[g] = np.linalg.inv(h)
        m_uv = np.ascontiguousarray(m[g, w:, :w])
        solved[g] = h_inv[g] @ m_uv
        gram[g] = m[g, :w, :w] - m_uv.T @ solved[g]
        constant[g] = (
            np.sum(mask[g] * np.log(theta))
            + 2.0 * np.sum(np.log(np.diag(low)))
            + np.sum(mask[g]) * LOG_2PI
        )
    return m, h_inv, solved, gram, constant


@numba.njit(cache=True)
def residuals(answers, mask, index, nu):
    """(y - nu) on the answered items (zero elsewhere), N x p."""
    resid = answers - nu
    if mask.shape[0] > 1:
        resid = resid * mask[index]
    return resid


@numba.njit(cache=True)
def pattern_rows(gram, sd: float, rho: float, degree: int):
    """Per pattern, the table's entries that are the same for all its respondents (the Gram
    matrix's terms of the polynomials, k, rho, sd, the spread), and 1 + sd^2 G00 (the
    standardised moderator's precision given y_i under the model linearised at w = 0)."""
    patterns = gram.shape[0]
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    rows = np.zeros((patterns, table_width(degree)))
    precision = np.empty(patterns)
    for g in range(patterns):
        for d in range(1, nq):
            for j in range(max(1, d - degree), min(degree, d - 1) + 1):
                rows[g, d] += gram[g, j - 1, d - j - 1]
        for a in range(2):
            for j in range(degree):
                rows[g, nq + a * nx + 1 + j] = -gram[g, degree + a, j]
        rows[g, base] = gram[g, degree, degree]
        rows[g, base + 1] = gram[g, degree, degree + 1]
        rows[g, base + 2] = gram[g, degree + 1, degree + 1]
        rows[g, base + 3] = rho
        rows[g, base + 4] = sd
        precision[g] = 1.0 + sd * sd * gram[g, 0, 0]
        rows[g, base + 6] = 1.0 / np.sqrt(precision[g])
    return rows, precision


@numba.njit(cache=True)
def affine_table(answers, mask, index, onto, nu, theta, sd: float, rho: float, degree: int):
    """The coefficient table (N, 4 degree + 10), the respondents' constants (N,), and for the
    reverse pass the residuals (N, p) and the projections P = (y - nu) Theta^-1 onto (N, k).

    ``answers`` (N, p; anything where missing), ``mask`` (K, p; 1.0 where answered) and
    ``index`` (N,) the patterns, ``onto`` (p, k), ``nu`` and ``theta`` (Theta's diagonal) (p,)."""
    # PyTensor may hand over views (nu read from the parameters with a stride): numba's
    # broadcasting over strided arrays is several times slower than over contiguous ones
    onto, nu, theta = (
        np.ascontiguousarray(onto),
        np.ascontiguousarray(nu),
        np.ascontiguousarray(theta),
    )
    n = answers.shape[0]
    w = degree + 2
    r = onto.shape[1] - w
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    _, h_inv, solved, gram, constant = pattern_factors(mask, onto, theta, degree)
    rows, precision = pattern_rows(gram, sd, rho, degree)
    resid = residuals(answers, mask, index, nu)
    projected = resid @ (onto / theta[:, None])
    s = (resid * resid) @ (1.0 / theta)
    table = np.empty((n, rows.shape[1]))
    per_respondent = np.empty(n)
    weighted = np.empty(w)
    # scalar loops per respondent: numba would allocate every small array expression anew
    for i in range(n):
        g = index[i]
        # element by element: a row assigned as a slice costs numba two array views per
        # respondent, a quarter of the table's time at N = 2000
        for c in range(rows.shape[1]):
            table[i, c] = rows[g, c]
        quadratic = 0.0  # pu' H^-1 pu, pu = P_u
        for a in range(r):
            row = 0.0
            for b in range(r):
                row += h_inv[g, a, b] * projected[i, w + b]
            quadratic += projected[i, w + a] * row
        for c in range(w):  # (y - nu)' Sigma0^-1 [V, E] = P_v - pu' S
            value = projected[i, c]
            for a in range(r):
                value -= projected[i, w + a] * solved[g, a, c]
            weighted[c] = value
        table[i, 0] = s[i] - quadratic
        for d in range(1, degree + 1):
            table[i, d] -= 2.0 * weighted[d - 1]
        table[i, nq] = weighted[degree]
        table[i, nq + nx] = weighted[degree + 1]
        table[i, base + 5] = sd * weighted[0] / precision[g]
        per_respondent[i] = constant[g]
    return table, per_respondent, resid, projected


@numba.njit(cache=True)
def affine_table_grad(
    mask, index, onto, theta, sd: float, resid, projected, g_table, g_constant, degree: int
):
    """The reverse pass of :func:`affine_table`: from the cotangents of the table (N, columns)
    and of the constants (N,), those of ``onto``, ``nu``, ``theta``, ``sd`` and ``rho``."""
    onto, theta = np.ascontiguousarray(onto), np.ascontiguousarray(theta)
    n = resid.shape[0]
    patterns, p = mask.shape
    k = onto.shape[1]
    w = degree + 2
    r = k - w
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    m, h_inv, solved, gram, _ = pattern_factors(mask, onto, theta, degree)
    _, precision = pattern_rows(gram, sd, 0.0, degree)
    g_projected = np.empty((n, k))
    g_s = np.empty(n)
    g_h_inv = np.zeros((patterns, r, r))
    g_solved = np.zeros((patterns, r, w))
    g_gram = np.zeros((patterns, w, w))
    g_rows = np.zeros((patterns, g_table.shape[1]))  # each pattern's sum of the table's rows
    g_pattern = np.zeros((patterns, k))  # and of g_projected's
    g_const = np.zeros(patterns)
    g_precision = np.zeros(patterns)
    g_sd = 0.0
    g_weighted = np.empty(w)
    for i in range(n):
        g = index[i]
        row = g_table[i]
        for c in range(row.shape[0]):
            g_rows[g, c] += row[c]
        g_const[g] += g_constant[i]
        # centre = sd t0 / precision (t0 = weighted[0])
        t0 = projected[i, 0]
        for a in range(r):
            t0 -= projected[i, w + a] * solved[g, a, 0]
        g_precision[g] -= row[base + 5] * sd * t0 / (precision[g] * precision[g])
        g_sd += row[base + 5] * t0 / precision[g]
        g_weighted[:] = 0.0
        g_weighted[0] = row[base + 5] * sd / precision[g]
        for d in range(1, degree + 1):
            g_weighted[d - 1] -= 2.0 * row[d]
        g_weighted[degree] += row[nq]
        g_weighted[degree + 1] += row[nq + nx]
        # table[i, 0] = s - pu' H^-1 pu; weighted = P_v - pu' S (pu = P_u)
        g_s[i] = row[0]
        for c in range(w):
            g_projected[i, c] = g_weighted[c]
            g_pattern[g, c] += g_weighted[c]
        for a in range(r):
            pa = projected[i, w + a]
            h_pu, s_gw = 0.0, 0.0
            for b in range(r):
                h_pu += h_inv[g, a, b] * projected[i, w + b]
                g_h_inv[g, a, b] -= row[0] * pa * projected[i, w + b]
            for c in range(w):
                s_gw += solved[g, a, c] * g_weighted[c]
                g_solved[g, a, c] -= pa * g_weighted[c]
            g_projected[i, w + a] = -2.0 * row[0] * h_pu - s_gw
            g_pattern[g, w + a] += g_projected[i, w + a]
    g_onto = np.zeros((p, k))
    g_inverse = np.zeros(p)  # of Theta^-1's diagonal
    g_theta = np.zeros(p)
    g_rho = 0.0
    for g in range(patterns):
        # the entries shared by the pattern's respondents (pattern_rows)
        g_rho += g_rows[g, base + 3]
        g_sd += g_rows[g, base + 4]
        g_precision[g] -= 0.5 * g_rows[g, base + 6] / (precision[g] * np.sqrt(precision[g]))
        g_sd += g_precision[g] * 2.0 * sd * gram[g, 0, 0]
        g_gram[g, 0, 0] += g_precision[g] * sd * sd
        for d in range(1, nq):
            for j in range(max(1, d - degree), min(degree, d - 1) + 1):
                g_gram[g, j - 1, d - j - 1] += g_rows[g, d]
        for a in range(2):
            for j in range(degree):
                g_gram[g, degree + a, j] -= g_rows[g, nq + a * nx + 1 + j]
        g_gram[g, degree, degree] += g_rows[g, base]
        g_gram[g, degree, degree + 1] += g_rows[g, base + 1]
        g_gram[g, degree + 1, degree + 1] += g_rows[g, base + 2]
        g_m = np.zeros((k, k))
        # G = M_vv - M_vu S; S = H^-1 M_uv; H = I + M_uu
        g_m[:w, :w] += g_gram[g]
        m_vu = np.ascontiguousarray(m[g, :w, w:])
        g_m[:w, w:] -= g_gram[g] @ solved[g].T
        g_solved[g] -= m_vu.T @ g_gram[g]
        g_h_inv[g] += g_solved[g] @ m_vu
        g_m[w:, :w] += h_inv[g] @ g_solved[g]
        # d H^-1 = -H^-1 dH H^-1; d log|H| = tr(H^-1 dH)
        g_m[w:, w:] += -h_inv[g] @ g_h_inv[g] @ h_inv[g] + g_const[g] * h_inv[g]
        # M = onto' diag(mask / theta) onto
        both = g_m + g_m.T
        g_onto += (onto * (mask[g] / theta)[:, None]) @ both
        g_inverse += mask[g] * np.sum((onto @ g_m) * onto, axis=1)
        g_theta += g_const[g] * mask[g] / theta
    # P = resid Theta^-1 onto, s = sum_j resid_ij^2 / theta_j, resid = (y - nu) on the answered
    inverse = 1.0 / theta
    scatter = resid.T @ g_projected  # p x k: the one product with the N x p answers backward
    g_onto += scatter * inverse[:, None]
    g_inverse += np.sum(onto * scatter, axis=1) + (resid * resid).T @ g_s
    g_nu = -inverse * (np.sum((mask.T @ g_pattern) * onto, axis=1) + 2.0 * (resid.T @ g_s))
    g_theta -= g_inverse * inverse * inverse
    return g_onto, g_nu, g_theta, g_sd, g_rho


class AffineTable(Op):
    """The coefficient table and constants of :func:`affine_table`, differentiable in ``onto``,
    ``nu``, ``theta``, ``sd`` and ``rho`` (:class:`AffineTableGrad`); its last two outputs (the
    residuals and projections) are kept for the reverse pass and have no gradient."""

    __props__ = ("degree", "version")

    def __init__(self, degree: int):
        self.degree = degree
        self.version = CACHE_VERSION

    def make_node(self, answers, mask, index, onto, nu, theta, sd, rho) -> Apply:
        inputs = [pt.as_tensor(x, dtype="float64") for x in (answers, mask)]
        inputs.append(pt.as_tensor(index, dtype="int64"))
        inputs += [pt.as_tensor(x, dtype="float64") for x in (onto, nu, theta)]
        # sd and rho as one vector (one input, one cotangent)
        inputs.append(
            pt.stack([pt.as_tensor(sd, dtype="float64"), pt.as_tensor(rho, dtype="float64")])
        )
        outputs = [pt.dmatrix(), pt.dvector(), pt.dmatrix(), pt.dmatrix()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage) -> None:
        *arrays, scalars = inputs
        outputs = affine_table(*arrays, scalars[0], scalars[1], self.degree)
        for storage, value in zip(output_storage, outputs, strict=True):
            storage[0] = value

    def connection_pattern(self, node) -> list:
        data = [[False] * 4] * 3
        return data + [[True, True, True, True]] * 4

    def infer_shape(self, fgraph, node, shapes) -> list:
        n, k = shapes[0][0], shapes[3][1]
        return [(n, table_width(self.degree)), (n,), shapes[0], (n, k)]

    def pullback(self, inputs, outputs, cotangents) -> list:
        _, mask, index, onto, _, theta, scalars = inputs
        if not all(isinstance(c.type, DisconnectedType) for c in cotangents[2:]):
            # the residuals and projections are kept for the reverse pass, not for a graph
            return [*(disconnected_type() for _ in range(3))] + [
                grad_not_implemented(self, j, x, "the residuals' and projections' gradient")
                for j, x in enumerate(inputs[3:], start=3)
            ]
        g_table, g_constant = (
            pt.zeros_like(out) if isinstance(c.type, DisconnectedType) else c
            for c, out in zip(cotangents[:2], outputs[:2], strict=True)
        )
        grads = AffineTableGrad(self.degree)(
            mask, index, onto, theta, scalars, outputs[2], outputs[3], g_table, g_constant
        )
        return [*(disconnected_type() for _ in range(3)), *grads]


class AffineTableGrad(Op):
    """The reverse pass of :class:`AffineTable` (:func:`affine_table_grad`); no gradient of its
    own (NUTS needs first derivatives only)."""

    __props__ = ("degree", "version")

    def __init__(self, degree: int):
        self.degree = degree
        self.version = CACHE_VERSION

    def make_node(self, mask, index, onto, theta, scalars, resid, projected, g_table, g_constant):
        inputs = [pt.as_tensor(mask, dtype="float64"), pt.as_tensor(index, dtype="int64")]
        inputs += [
            pt.as_tensor(x, dtype="float64")
            for x in (onto, theta, scalars, resid, projected, g_table, g_constant)
        ]
        outputs = [pt.dmatrix(), pt.dvector(), pt.dvector(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage) -> None:
        mask, index, onto, theta, scalars, *rest = inputs
        g_onto, g_nu, g_theta, g_sd, g_rho = affine_table_grad(
            mask, index, onto, theta, scalars[0], *rest, self.degree
        )
        for storage, value in zip(output_storage, (g_onto, g_nu, g_theta), strict=False):
            storage[0] = value
        output_storage[3][0] = np.array([g_sd, g_rho])

    def infer_shape(self, fgraph, node, shapes) -> list:
        return [shapes[2], shapes[3], shapes[3], (2,)]

    def pullback(self, inputs, outputs, cotangents) -> list:
        return [
            grad_not_implemented(self, j, x, "a second derivative of the quadrature likelihood")
            for j, x in enumerate(inputs)
        ]


@numba_basic.register_funcify_default_op_cache_key(AffineTable)
def _numba_affine_table(op: AffineTable, **kwargs):
    degree = op.degree

    @numba_basic.numba_njit
    def kernel(answers, mask, index, onto, nu, theta, scalars):
        return affine_table(answers, mask, index, onto, nu, theta, scalars[0], scalars[1], degree)

    return kernel


@numba_basic.register_funcify_default_op_cache_key(AffineTableGrad)
def _numba_affine_table_grad(op: AffineTableGrad, **kwargs):
    degree = op.degree

    @numba_basic.numba_njit
    def kernel(mask, index, onto, theta, scalars, resid, projected, g_table, g_constant):
        g_onto, g_nu, g_theta, g_sd, g_rho = affine_table_grad(
            mask, index, onto, theta, scalars[0], resid, projected, g_table, g_constant, degree
        )
        return g_onto, g_nu, g_theta, np.array([g_sd, g_rho])

    return kernel
