"""The adapted quadrature rule of :mod:`bayes_sor.model.quadrature` as one fused PyTensor op.

Per respondent and node the rule is some forty scalar operations (three polynomials in the
moderator's value w, a 2 x 2 Woodbury term, the node's weight and the log-sum-exp over the
nodes). Written as PyTensor's elementwise graph, each of them is a pass over N x nodes numbers,
forward and backward, and every broadcast coefficient a reduction; the three-factor model's
gradient at N = 2000 spent 0.9 of its 1.0 ms there (benchmarks/RESULTS.md, section 6.2).
:class:`AdaptedQuadrature` does them in one numba kernel (:func:`adapted_quadrature`) and
returns, beside log p(y_i), its derivatives with respect to the respondent's coefficients, the
reverse pass written by hand; its ``pullback`` scales them by the incoming gradient, so nutpie's
numba-compiled log density calls the kernel once per gradient. The kernel runs SIMD across
respondents: blocks of :data:`BLOCK`, transposed so that each loop over a block's respondents
reads and writes contiguous rows, with exp and log written as arithmetic (:func:`exp`,
:func:`log`) and det^-1/2 by a square root, so that LLVM vectorises every loop (4x the scalar
loop's speed; benchmarks/RESULTS.md). The moderator's scores after a fit are drawn on cells by
:func:`draw_on_cells` from the same per-node terms, vectorised alike.

The coefficients of respondent i are one row of a matrix (:func:`columns`): the polynomial
r' Sigma0^-1 r (2 degree + 1 coefficients, rising), the two polynomials E' Sigma0^-1 r (degree
+ 1 each), then k11, k12, k22 (E' Sigma0^-1 E), rho (R1'R1), sd (the moderator's prior SD) and
the centre and spread of its standardised nodes. The respondent's constant (log|Sigma0_oo| and
the answered items' log 2 pi) is added outside.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic
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


def module_version(path: str) -> int:
    """The checksum of a kernel module's source, one of its ops' props: PyTensor's numba cache
    and the compiled-model cache know an op by its class and props only, so without it an
    edited kernel would not be compiled again (the cached old code would run)."""
    return zlib.crc32(Path(path).read_bytes())


#: this module's :func:`module_version`
CACHE_VERSION = module_version(__file__)
#: LLVM may contract a * b + c to one FMA and divide by multiplying with a reciprocal; no
#: reassociation (the rounding trick of :func:`exp` needs its additions in order)
FAST = {"contract", "arcp"}
#: respondents per block: the vectorised loops run over a block, whose coefficients and Jacobian
#: sit in one buffer and per-node terms in another, at offsets fixed at compilation (so LLVM
#: needs one run-time alias check between the two) and in the L1 cache
BLOCK = 32
#: rows per node that the reverse pass reads back (:func:`_rule`)
_KEPT = 6
_LOG2E = 1.4426950408889634
#: ln 2 split in two (fdlibm): n ln2_hi is exact for |n| < 2^20, so x - n ln 2 loses nothing
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 1.5 * 2^52: adding and subtracting it rounds a double of magnitude below 2^51 to an integer
_ROUND = 6755399441055744.0
#: 1 / k! for k = 13, ..., 2 (exp's Taylor polynomial, Horner order)
_INVERSE_FACTORIALS = tuple(1.0 / math.factorial(k) for k in range(13, 1, -1))
#: 2 / (2 j + 1) for j = 10, ..., 1 (the series of 2 atanh(s) / s - 2 in s^2, Horner order)
_ATANH = tuple(2.0 / (2 * j + 1) for j in range(10, 0, -1))
#: the high bits of sqrt(2) / 2's mantissa: adding 1 - them to x's bits carries into the
#: exponent exactly when x's mantissa is at least sqrt(2) (musl's log)
_SQRT2_HALF = 0x3FE6A09E00000000
_SQRT2_CARRY = 0x3FF0000000000000 - _SQRT2_HALF
_MANTISSA = 0x000FFFFFFFFFFFFF


@intrinsic
def _from_bits(typingctx, bits):
    """The double whose IEEE 754 bits are the int64 ``bits`` (a vector instruction)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _to_bits(typingctx, x):
    """The IEEE 754 bits of the double ``x`` as an int64 (a vector instruction)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _sqrt(typingctx, x):
    """The square root as LLVM's intrinsic (a vector instruction): numba calls libm's sqrt,
    which LLVM does not vectorise (it may set errno)."""

    def codegen(context, builder, signature, args):
        sqrt = builder.module.declare_intrinsic("llvm.sqrt", [ir.DoubleType()])
        return builder.call(sqrt, args)

    return types.float64(types.float64), codegen


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def exp(x: float) -> float:
    """e ** x within 2 ulp (subnormal results within one unit of their last place), inf above
    709.78, 0 below -745.13, NaN for NaN: arithmetic only, so that LLVM vectorises the loops
    that call it. Written by hand because numba calls libm's scalar exp in a loop unless SVML is
    there, and SVML needs an llvmlite built with Intel's patch (PyPI's is not:
    ``llvmlite.binding.has_svml`` is False) and Intel's runtime library. Cody-Waite reduction
    x = n ln 2 + r, |r| <= ln 2 / 2, the Taylor polynomial of degree 13 (remainder below 1e-17
    relative), then 2^n in two factors so that results in the subnormal range round once more
    at most."""
    bounded = x if x > -746.0 else -746.0
    bounded = bounded if bounded < 710.0 else 710.0
    n = (bounded * _LOG2E + _ROUND) - _ROUND
    r = (bounded - n * _LN2_HI) - n * _LN2_LO
    p = _INVERSE_FACTORIALS[0]
    for c in _INVERSE_FACTORIALS[1:]:
        p = p * r + c
    p = (p * r + 1.0) * r + 1.0
    k = np.int64(n)
    half = k >> 1
    y = p * _from_bits((half + 1023) << 52) * _from_bits((k - half + 1023) << 52)
    return y if x == x else x


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def log(x: float) -> float:
    """The natural logarithm within 1 ulp, -inf at 0, NaN below, for the same reason as
    :func:`exp` by hand (fdlibm's reduction): x = 2^k m, m in [sqrt(2)/2, sqrt(2)), f = m - 1,
    s = f / (2 + f), log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))) with R the series of
    2 atanh(s) / s - 2 to s^20 (remainder below 1e-19 relative)."""
    tiny = x < 2.2250738585072014e-308
    scaled = x * 18014398509481984.0 if tiny else x  # subnormals times 2^54
    bits = _to_bits(scaled) + _SQRT2_CARRY
    k = (bits >> 52) - (1023 + 54 if tiny else 1023)
    f = _from_bits((bits & _MANTISSA) + _SQRT2_HALF) - 1.0
    s = f / (2.0 + f)
    z = s * s
    r = _ATANH[0]
    for c in _ATANH[1:]:
        r = r * z + c
    r *= z
    half_square = 0.5 * f * f
    y = k * _LN2_HI - ((half_square - (s * (half_square + r) + k * _LN2_LO)) - f)
    y = y if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    return y if x < np.inf else x


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _horner(a, start: int, count: int, stride: int, w: float) -> float:
    """sum_j a[start + j stride] w^j, j < count."""
    value = a[start + (count - 1) * stride]
    for j in range(count - 2, -1, -1):
        value = value * w + a[start + j * stride]
    return value


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _slope(a, start: int, count: int, stride: int, w: float) -> float:
    """The derivative in w of :func:`_horner`'s polynomial."""
    value = (count - 1) * a[start + (count - 1) * stride]
    for j in range(count - 2, 0, -1):
        value = value * w + j * a[start + j * stride]
    return value


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _woodbury(x1: float, x2: float, k11: float, k12: float, k22: float, rho: float, wv: float):
    """The 2 x 2 matrix M of :meth:`bayes_sor.model.quadrature.Affine.combine` at w = ``wv``,
    its determinant and the vector v of the Woodbury term (x' adj(M) v / det):
    (curve, m11, m12, m21, m22, det, v1, v2)."""
    curve = rho * wv * wv
    m11 = 1.0 + wv * k12 + curve * k11
    m12 = wv * k22 + curve * k12
    m21 = wv * k11
    m22 = 1.0 + wv * k12
    return curve, m11, m12, m21, m22, m11 * m22 - m12 * m21, curve * x1 + wv * x2, wv * x1


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _load_block(coefficients, start: int, work, width: int) -> None:
    """Rows ``start`` to ``start + BLOCK`` of ``coefficients`` into ``work`` transposed, column
    j at j BLOCK (contiguous rows for the loops over a block's respondents); rows past the
    last respondent repeat it, so that the loops always run over BLOCK."""
    last = coefficients.shape[0] - 1
    for i in range(BLOCK):
        for j in range(width):
            work[j * BLOCK + i] = coefficients[min(start + i, last), j]


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _at(work, i: int, wv: float, degree: int):
    """log p(y_i | w) at w = ``wv`` in parts, for respondent ``i`` of a block loaded by
    :func:`_load_block`: r' Sigma0^-1 r = quad(w), E' Sigma0^-1 r = (x1(w), x2(w)) by Horner,
    1 / det and the Woodbury term of :func:`_woodbury`, so that log p(y_i | w) without its
    constant is -(log det + quad - wood) / 2: (quad, x1, x2, 1 / det, wood)."""
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    quad = _horner(work, i, nq, BLOCK, wv)
    x1 = _horner(work, nq * BLOCK + i, nx, BLOCK, wv)
    x2 = _horner(work, (nq + nx) * BLOCK + i, nx, BLOCK, wv)
    _, m11, m12, m21, m22, det, v1, v2 = _woodbury(
        x1,
        x2,
        work[base * BLOCK + i],
        work[(base + 1) * BLOCK + i],
        work[(base + 2) * BLOCK + i],
        work[(base + 3) * BLOCK + i],
        wv,
    )
    inv = 1.0 / det
    return quad, x1, x2, inv, (x1 * (m22 * v1 - m12 * v2) + x2 * (m11 * v2 - m21 * v1)) * inv


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _rule(coefficients, z, log_weight, degree: int):
    """:func:`adapted_quadrature` for a ``degree`` that is a constant after inlining (so that
    the polynomials' loops unroll and the loops over a block's respondents vectorise)."""
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    # the width from the degree, not the array's shape: the offsets below are then constants
    # that LLVM knows to be positive, and numba's check for negative indices (which stops the
    # vectorisation) drops out
    n, width = coefficients.shape[0], base + 7
    if coefficients.shape[1] != width:
        raise ValueError("adapted_quadrature: the coefficients' columns do not match the degree")
    nodes = len(z)
    value = np.empty(n)
    jac = np.empty((n, width))
    # one block's rows of BLOCK: its coefficients, its Jacobian, the max and 1 / sum of terms
    work = np.empty((2 * width + 2) * BLOCK)
    gradient, top, scale = width * BLOCK, 2 * width * BLOCK, (2 * width + 1) * BLOCK
    # per node, KEPT rows of BLOCK that the reverse pass reads back: the exponent without the
    # determinant (then the term), det^-1/2, x1, x2, 1 / det, the Woodbury term (node-major:
    # an offset of the form (q nodes + k) BLOCK, not known to be positive, would keep numba's
    # check for negative indices, which stops the vectorisation)
    kept = np.empty(nodes * _KEPT * BLOCK)
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        _load_block(coefficients, start, work, width)
        work[gradient:top] = 0.0
        for k in range(nodes):
            lift = log_weight[k] + 0.5 * z[k] * z[k]
            node = k * _KEPT * BLOCK
            for i in range(BLOCK):
                u = work[(base + 5) * BLOCK + i] + work[(base + 6) * BLOCK + i] * z[k]
                quad, x1, x2, inv, wood = _at(work, i, work[(base + 4) * BLOCK + i] * u, degree)
                kept[node + i] = lift - 0.5 * u * u - 0.5 * (quad - wood)
                kept[node + BLOCK + i] = _sqrt(inv)
                kept[node + 2 * BLOCK + i] = x1
                kept[node + 3 * BLOCK + i] = x2
                kept[node + 4 * BLOCK + i] = inv
                kept[node + 5 * BLOCK + i] = wood
        # the log-sum-exp over nodes, shifted by the largest exponent without -log(det) / 2:
        # the largest term is then det^-1/2, between 7e-155 and 7e153 for any positive double
        for i in range(BLOCK):
            work[top + i] = kept[i]
            work[scale + i] = 0.0
        for k in range(1, nodes):
            node = k * _KEPT * BLOCK
            for i in range(BLOCK):
                t = kept[node + i]
                work[top + i] = t if t > work[top + i] else work[top + i]
        for k in range(nodes):
            node = k * _KEPT * BLOCK
            for i in range(BLOCK):
                term = exp(kept[node + i] - work[top + i]) * kept[node + BLOCK + i]
                kept[node + i] = term
                work[scale + i] += term
        for i in range(BLOCK):
            spread = work[(base + 6) * BLOCK + i]
            total = work[scale + i]
            work[top + i] += log(spread * total)
            work[scale + i] = 1.0 / total
            # d log(spread) / d spread
            work[gradient + (width - 1) * BLOCK + i] = 1.0 / spread
        value[start : start + m] = work[top : top + m]
        for k in range(nodes):
            node = k * _KEPT * BLOCK
            for i in range(BLOCK):
                share = kept[node + i] * work[scale + i]
                x1, x2 = kept[node + 2 * BLOCK + i], kept[node + 3 * BLOCK + i]
                inv, wood = kept[node + 4 * BLOCK + i], kept[node + 5 * BLOCK + i]
                k11, k12 = work[base * BLOCK + i], work[(base + 1) * BLOCK + i]
                k22, rho = work[(base + 2) * BLOCK + i], work[(base + 3) * BLOCK + i]
                sd = work[(base + 4) * BLOCK + i]
                u = work[(base + 5) * BLOCK + i] + work[(base + 6) * BLOCK + i] * z[k]
                wv = sd * u
                curve, m11, m12, m21, m22, _, v1, v2 = _woodbury(x1, x2, k11, k12, k22, rho, wv)
                # d value / d (num, det): value = -(log det + quad - num / det) / 2
                g_num = 0.5 * inv
                g_det = -0.5 * inv * (1.0 + wood)
                g_m11 = g_num * x2 * v2 + g_det * m22
                g_m22 = g_num * x1 * v1 + g_det * m11
                g_m12 = -g_num * x1 * v2 - g_det * m21
                g_m21 = -g_num * x2 * v1 - g_det * m12
                g_v1 = g_num * (x1 * m22 - x2 * m21)
                g_v2 = g_num * (x2 * m11 - x1 * m12)
                g_x1 = g_num * (m22 * v1 - m12 * v2) + g_v1 * curve + g_v2 * wv
                g_x2 = g_num * (m11 * v2 - m21 * v1) + g_v1 * wv
                g_curve = g_v1 * x1 + g_m11 * k11 + g_m12 * k12
                g_w = (
                    g_v1 * x2
                    + g_v2 * x1
                    + (g_m11 + g_m22) * k12
                    + g_m12 * k22
                    + g_m21 * k11
                    + g_curve * 2.0 * rho * wv
                    - 0.5 * _slope(work, i, nq, BLOCK, wv)
                    + g_x1 * _slope(work, nq * BLOCK + i, nx, BLOCK, wv)
                    + g_x2 * _slope(work, (nq + nx) * BLOCK + i, nx, BLOCK, wv)
                )
                # the polynomials' coefficients: d/dc_j = w^j
                power = share
                for j in range(nq):
                    work[gradient + j * BLOCK + i] -= 0.5 * power
                    if j < nx:
                        work[gradient + (nq + j) * BLOCK + i] += g_x1 * power
                        work[gradient + (nq + nx + j) * BLOCK + i] += g_x2 * power
                    power *= wv
                g_u = g_w * sd - u
                row = gradient + base * BLOCK + i
                work[row] += share * (g_m11 * curve + g_m21 * wv)
                work[row + BLOCK] += share * ((g_m11 + g_m22) * wv + g_m12 * curve)
                work[row + 2 * BLOCK] += share * g_m12 * wv
                work[row + 3 * BLOCK] += share * g_curve * wv * wv
                work[row + 4 * BLOCK] += share * g_w * u
                work[row + 5 * BLOCK] += share * g_u
                work[row + 6 * BLOCK] += share * g_u * z[k]
        for i in range(m):
            for j in range(width):
                jac[start + i, j] = work[gradient + j * BLOCK + i]
    return value, jac


@numba.njit(cache=True, error_model="numpy", fastmath=FAST)
def adapted_quadrature(coefficients, z, log_weight, degree: int):
    """log p(y_i) without its constant (n,) and its derivatives by ``coefficients`` (n, 4
    degree + 10), on the nodes u_ik = centre_i + spread_i z_k of the standardised moderator
    (w = sd u), each weighted by its Gauss-Hermite ``log_weight`` and spread_i phi(u) / phi(z).

    Per node the polynomials and the Woodbury term (:func:`_at`, with det^-1/2 in
    place of exp(-log(det) / 2): one :func:`exp` per node and one log per respondent); the
    reverse pass follows it back. Vectorised across respondents, BLOCK at a time."""
    if degree == 2:
        return _rule(coefficients, z, log_weight, 2)
    if degree == 3:
        return _rule(coefficients, z, log_weight, 3)
    raise ValueError("adapted_quadrature takes degree 2 or 3 (the mean's degree in w)")


@numba.njit(inline="always", error_model="numpy", fastmath=FAST)
def _draw(coefficients, cells, width: float, uniforms, degree: int):
    """:func:`draw_on_cells` for a ``degree`` that is a constant after inlining (as
    :func:`_rule`), BLOCK respondents at a time."""
    nq, nx = 2 * degree + 1, degree + 1
    base = nq + 2 * nx
    n, columns = coefficients.shape[0], base + 7
    if coefficients.shape[1] != columns:
        raise ValueError("draw_on_cells: the coefficients' columns do not match the degree")
    count = len(cells)
    out = np.empty(n)
    # the block's coefficients, then rows of BLOCK: the largest exponent, the running sum,
    # the uniform number that picks the cell, the picked cell
    work = np.empty((columns + 4) * BLOCK)
    top, running = columns * BLOCK, (columns + 1) * BLOCK
    pick, chosen = (columns + 2) * BLOCK, (columns + 3) * BLOCK
    # per cell two rows of BLOCK: the exponent without the determinant (then the cumulative
    # sum of the cells' densities), det^-1/2
    kept = np.empty(2 * count * BLOCK)
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        _load_block(coefficients, start, work, columns)
        for c in range(count):
            cell = 2 * c * BLOCK
            for i in range(BLOCK):
                u = work[(base + 5) * BLOCK + i] + work[(base + 6) * BLOCK + i] * cells[c]
                quad, _, _, inv, wood = _at(work, i, work[(base + 4) * BLOCK + i] * u, degree)
                kept[cell + i] = -0.5 * (quad - wood) - 0.5 * u * u
                kept[cell + BLOCK + i] = _sqrt(inv)
        # the densities shifted by the largest exponent without -log(det) / 2, as in _rule
        for i in range(BLOCK):
            work[top + i] = kept[i]
            work[running + i] = 0.0
            work[chosen + i] = 0.0
        for c in range(1, count):
            cell = 2 * c * BLOCK
            for i in range(BLOCK):
                t = kept[cell + i]
                work[top + i] = t if t > work[top + i] else work[top + i]
        for c in range(count):
            cell = 2 * c * BLOCK
            for i in range(BLOCK):
                work[running + i] += exp(kept[cell + i] - work[top + i]) * kept[cell + BLOCK + i]
                kept[cell + i] = work[running + i]
        for i in range(m):
            work[pick + i] = uniforms[start + i, 0] * work[running + i]
        # the first cell whose cumulative sum reaches the pick is the number of cells below
        # it (the sums do not decrease)
        for c in range(count):
            cell = 2 * c * BLOCK
            for i in range(BLOCK):
                work[chosen + i] += 1.0 if kept[cell + i] < work[pick + i] else 0.0
        for i in range(m):
            c = min(int(work[chosen + i]), count - 1)
            sd, centre = work[(base + 4) * BLOCK + i], work[(base + 5) * BLOCK + i]
            spread = work[(base + 6) * BLOCK + i]
            out[start + i] = sd * (
                centre + spread * (cells[c] + width * (uniforms[start + i, 1] - 0.5))
            )
    return out


@numba.njit(cache=True, error_model="numpy", fastmath=FAST)
def draw_on_cells(coefficients, cells, width: float, uniforms, degree: int):
    """One draw of the moderator's value w per respondent (n,), from p(w | y_i) on the cells
    u = centre_i + spread_i ``cells`` of the standardised moderator (``width`` apart, rows of
    ``coefficients`` as :func:`columns`): a cell with probability proportional to the density
    at its centre (:func:`_at` and the prior), then uniform within it, ``uniforms`` (n, 2) the
    two uniform numbers per respondent. Vectorised across respondents as
    :func:`adapted_quadrature`, BLOCK at a time (det^-1/2 by a square root, the arithmetic
    :func:`exp`)."""
    if degree == 2:
        return _draw(coefficients, cells, width, uniforms, 2)
    if degree == 3:
        return _draw(coefficients, cells, width, uniforms, 3)
    raise ValueError("draw_on_cells takes degree 2 or 3 (the mean's degree in w)")


class AdaptedQuadrature(Op):
    """Per respondent, log p(y_i) without its constant and the Jacobian of it by the row of
    coefficients (:func:`columns`), ``nodes`` adapted Gauss-Hermite nodes. Differentiable
    through the first output only (the Jacobian has no gradient: nutpie needs first
    derivatives)."""

    __props__ = ("degree", "nodes", "version")

    def __init__(self, degree: int, nodes: int):
        self.degree = degree
        self.nodes = nodes
        # PyTensor's numba cache and the compiled-model cache (graph_key) know an op by its
        # class and props: the kernel's checksum among them compiles an edited kernel anew
        self.version = CACHE_VERSION

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
