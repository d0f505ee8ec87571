"""The adapted quadrature rule of :mod:`bayes_sor.model.quadrature` as one fused PyTensor op.

Per respondent and node the rule is some forty scalar operations (three polynomials in the
moderator's value w, a 2 x 2 Woodbury term, the node's weight and the log-sum-exp over the
nodes). Written as PyTensor's elementwise graph, each of them is a pass over N x nodes numbers,
forward and backward, and every broadcast coefficient a reduction; the three-factor model's
gradient at N = 2000 spent 0.9 of its 1.0 ms there (benchmarks/RESULTS.md, section 6.2).
:class:`AdaptedQuadrature` does them in one loop over respondents and nodes (numba) and
returns, beside log p(y_i), its derivatives with respect to the respondent's coefficients, the
reverse pass written by hand; its ``pullback`` scales them by the incoming gradient, so nutpie's
numba-compiled log density calls the loop once per gradient.

The coefficients of respondent i are one row of a matrix (:func:`columns`): the polynomial
r' Sigma0^-1 r (2 degree + 1 coefficients, rising), the two polynomials E' Sigma0^-1 r (degree
+ 1 each), then k11, k12, k22 (E' Sigma0^-1 E), rho (R1'R1), sd (the moderator's prior SD) and
the centre and spread of its standardised nodes. The respondent's constant (log|Sigma0_oo| and
the answered items' log 2 pi) is added outside.
"""

from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic


def columns(quadratic: list, cross: list, scalars: list, n) -> pt.TensorVariable:
    """The (n, 4 degree + 10) coefficient matrix of :class:`AdaptedQuadrature`, every entry
    (a vector of n, one of length 1 or a scalar) broadcast to n rows: the polynomials'
    coefficients, then the seven scalars k11, k12, k22, rho, sd, centre, spread."""
    entries = [*quadratic, *cross[0], *cross[1], *scalars]
    return pt.stack([pt.broadcast_to(pt.as_tensor(e, dtype="float64"), (n,)) for e in entries], 1)


@numba.njit(inline="always", error_model="numpy", fastmath={"contract", "arcp"})
def log_density(coefficients, i: int, wv: float, degree: int) -> tuple:
    """log p(y_i | w) at w = ``wv`` without its constant, from row ``i`` of ``coefficients``
    (:func:`columns`), and what the reverse pass reads back: 1 / det, the Woodbury term, x1,
    x2, m11. r' Sigma0^-1 r = quad(w), E' Sigma0^-1 r = (x1(w), x2(w)) by Horner, then
    -(log det + quad - num / det) / 2 with the 2 x 2 Woodbury term of
    :meth:`bayes_sor.model.quadrature.Affine.combine`."""
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    k11, k12, k22 = coefficients[i, base], coefficients[i, base + 1], coefficients[i, base + 2]
    rho = coefficients[i, base + 3]
    quad = coefficients[i, nq - 1]
    for j in range(nq - 2, -1, -1):
        quad = quad * wv + coefficients[i, j]
    x1 = coefficients[i, nq + nx - 1]
    x2 = coefficients[i, base - 1]
    for j in range(nx - 2, -1, -1):
        x1 = x1 * wv + coefficients[i, nq + j]
        x2 = x2 * wv + coefficients[i, nq + nx + j]
    curve = rho * wv * wv
    m11 = 1.0 + wv * k12 + curve * k11
    m12 = wv * k22 + curve * k12
    m21 = wv * k11
    m22 = 1.0 + wv * k12
    det = m11 * m22 - m12 * m21
    v1 = curve * x1 + wv * x2
    v2 = wv * x1
    inv = 1.0 / det
    wood = (x1 * (m22 * v1 - m12 * v2) + x2 * (m11 * v2 - m21 * v1)) * inv
    return -0.5 * (np.log(det) + quad - wood), inv, wood, x1, x2, m11


@numba.njit(cache=True, error_model="numpy", fastmath={"contract", "arcp"})
def adapted_quadrature(coefficients, z, log_weight, degree: int):
    """log p(y_i) without its constant (n,) and its derivatives by ``coefficients`` (n, 4
    degree + 10), on the nodes u_ik = centre_i + spread_i z_k of the standardised moderator
    (w = sd u), each weighted by its Gauss-Hermite ``log_weight`` and spread_i phi(u) / phi(z).

    Per node :func:`log_density`; the reverse pass follows it back."""
    n, width = coefficients.shape
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    nodes = len(z)
    value = np.empty(n)
    jac = np.zeros((n, width))
    # per node, what the reverse pass reads back: u, 1 / det, the Woodbury term, x1, x2, m11
    keep = np.empty((nodes, 6))
    terms = np.empty(nodes)
    for i in range(n):
        k11, k12, k22 = coefficients[i, base], coefficients[i, base + 1], coefficients[i, base + 2]
        rho, sd = coefficients[i, base + 3], coefficients[i, base + 4]
        centre, spread = coefficients[i, base + 5], coefficients[i, base + 6]
        log_spread = np.log(spread)
        top = -np.inf
        for k in range(nodes):
            u = centre + spread * z[k]
            logp, inv, wood, x1, x2, m11 = log_density(coefficients, i, sd * u, degree)
            terms[k] = logp + log_weight[k] + log_spread - 0.5 * u * u + 0.5 * z[k] * z[k]
            top = max(top, terms[k])
            keep[k, 0], keep[k, 1], keep[k, 2], keep[k, 3] = u, inv, wood, x1
            keep[k, 4], keep[k, 5] = x2, m11
        total = 0.0
        for k in range(nodes):
            terms[k] = np.exp(terms[k] - top)
            total += terms[k]
        value[i] = top + np.log(total)
        g_k11 = g_k12 = g_k22 = g_rho = g_sd = g_centre = g_spread = 0.0
        for k in range(nodes):
            share = terms[k] / total
            u, inv, wood, x1, x2, m11 = (
                keep[k, 0],
                keep[k, 1],
                keep[k, 2],
                keep[k, 3],
                keep[k, 4],
                keep[k, 5],
            )
            wv = sd * u
            curve = rho * wv * wv
            m12 = wv * k22 + curve * k12
            m21 = wv * k11
            m22 = 1.0 + wv * k12
            v1 = curve * x1 + wv * x2
            v2 = wv * x1
            # d value / d (num, det): value = -(log det + quad - num / det) / 2
            g_num = 0.5 * inv
            g_det = -0.5 * inv * (1.0 + wood)
            g_x1 = g_num * (m22 * v1 - m12 * v2)
            g_x2 = g_num * (m11 * v2 - m21 * v1)
            g_m11 = g_num * x2 * v2 + g_det * m22
            g_m22 = g_num * x1 * v1 + g_det * m11
            g_m12 = -g_num * x1 * v2 - g_det * m21
            g_m21 = -g_num * x2 * v1 - g_det * m12
            g_v1 = g_num * (x1 * m22 - x2 * m21)
            g_v2 = g_num * (x2 * m11 - x1 * m12)
            g_x1 += g_v1 * curve + g_v2 * wv
            g_x2 += g_v1 * wv
            g_curve = g_v1 * x1 + g_m11 * k11 + g_m12 * k12
            # the polynomials' coefficients (d/dc_j = w^j) and derivatives in w
            dquad = dx1 = dx2 = 0.0
            power = 1.0
            for j in range(nq):
                jac[i, j] -= 0.5 * share * power
                if j + 1 < nq:
                    dquad += (j + 1) * coefficients[i, j + 1] * power
                if j < nx:
                    jac[i, nq + j] += share * g_x1 * power
                    jac[i, nq + nx + j] += share * g_x2 * power
                    if j + 1 < nx:
                        dx1 += (j + 1) * coefficients[i, nq + j + 1] * power
                        dx2 += (j + 1) * coefficients[i, nq + nx + j + 1] * power
                power *= wv
            g_w = (
                g_v1 * x2
                + g_v2 * x1
                + (g_m11 + g_m22) * k12
                + g_m12 * k22
                + g_m21 * k11
                + g_curve * 2.0 * rho * wv
                - 0.5 * dquad
                + g_x1 * dx1
                + g_x2 * dx2
            )
            g_k11 += share * (g_m11 * curve + g_m21 * wv)
            g_k12 += share * ((g_m11 + g_m22) * wv + g_m12 * curve)
            g_k22 += share * g_m12 * wv
            g_rho += share * g_curve * wv * wv
            g_u = g_w * sd - u
            g_sd += share * g_w * u
            g_centre += share * g_u
            g_spread += share * (g_u * z[k] + 1.0 / spread)
        jac[i, base], jac[i, base + 1], jac[i, base + 2] = g_k11, g_k12, g_k22
        jac[i, base + 3], jac[i, base + 4] = g_rho, g_sd
        jac[i, base + 5], jac[i, base + 6] = g_centre, g_spread
    return value, jac


@numba.njit(cache=True, error_model="numpy")
def draw_on_cells(coefficients, cells, width: float, uniforms, degree: int):
    """One draw of the moderator's value w per respondent (n,), from p(w | y_i) on the cells
    u = centre_i + spread_i ``cells`` of the standardised moderator (``width`` apart, rows of
    ``coefficients`` as :func:`columns`): a cell with probability proportional to the density
    at its centre (:func:`log_density` and the prior), then uniform within it, ``uniforms``
    (n, 2) the two uniform numbers per respondent."""
    n = coefficients.shape[0]
    base = 4 * degree + 3
    out = np.empty(n)
    values = np.empty(len(cells))
    for i in range(n):
        sd, centre, spread = (
            coefficients[i, base + 4],
            coefficients[i, base + 5],
            coefficients[i, base + 6],
        )
        top = -np.inf
        for c in range(len(cells)):
            u = centre + spread * cells[c]
            values[c] = log_density(coefficients, i, sd * u, degree)[0] - 0.5 * u * u
            top = max(top, values[c])
        total = 0.0
        for c in range(len(cells)):
            total += np.exp(values[c] - top)
            values[c] = total
        pick, cell = uniforms[i, 0] * total, len(cells) - 1
        for c in range(len(cells)):
            if values[c] >= pick:
                cell = c
                break
        out[i] = sd * (centre + spread * (cells[cell] + width * (uniforms[i, 1] - 0.5)))
    return out


class AdaptedQuadrature(Op):
    """Per respondent, log p(y_i) without its constant and the Jacobian of it by the row of
    coefficients (:func:`columns`), ``nodes`` adapted Gauss-Hermite nodes. Differentiable
    through the first output only (the Jacobian has no gradient: nutpie needs first
    derivatives)."""

    __props__ = ("degree", "nodes")

    def __init__(self, degree: int, nodes: int):
        self.degree = degree
        self.nodes = nodes

    def rule(self) -> tuple[np.ndarray, np.ndarray]:
        """Standard-normal Gauss-Hermite nodes and log weights."""
        z, weight = np.polynomial.hermite_e.hermegauss(self.nodes)
        return z, np.log(weight / np.sqrt(2 * np.pi))

    def make_node(self, coefficients) -> Apply:
        coefficients = pt.as_tensor(coefficients, dtype="float64")
        if coefficients.ndim != 2:
            raise TypeError("AdaptedQuadrature takes an (n, columns) matrix")
        z, log_weight = (pt.constant(a) for a in self.rule())
        return Apply(self, [coefficients, z, log_weight], [pt.dvector(), pt.dmatrix()])

    def perform(self, node, inputs, output_storage) -> None:
        value, jac = adapted_quadrature(*inputs, self.degree)
        output_storage[0][0], output_storage[1][0] = value, jac

    def connection_pattern(self, node) -> list:
        return [[True, True], [False, False], [False, False]]

    def infer_shape(self, fgraph, node, shapes) -> list:
        return [shapes[0][:1], shapes[0]]

    def pullback(self, inputs, outputs, cotangents) -> list:
        if not isinstance(cotangents[1].type, DisconnectedType):
            # a second derivative of the log-likelihood: NUTS never asks for one, so the
            # hand-written reverse pass stops at the first (PyTensor's marker of a gradient
            # that does not exist, raised only if a graph uses it)
            return [
                grad_not_implemented(self, 0, inputs[0], "the Jacobian output's gradient"),
                *(disconnected_type() for _ in inputs[1:]),
            ]
        return [cotangents[0][:, None] * outputs[1], *(disconnected_type() for _ in inputs[1:])]


@numba_basic.register_funcify_default_op_cache_key(AdaptedQuadrature)
def _numba_adapted_quadrature(op: AdaptedQuadrature, **kwargs):
    degree = op.degree

    @numba_basic.numba_njit
    def kernel(coefficients, z, log_weight):
        return adapted_quadrature(coefficients, z, log_weight, degree)

    return kernel
