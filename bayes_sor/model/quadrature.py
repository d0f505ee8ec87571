"""The quadrature likelihood of latent interactions (a Bayesian LMS, Klein & Moosbrugger 2000):
the exogenous latents that enter product terms (the integrated latents w) are integrated out by
Gauss-Hermite quadrature, everything else by the normal marginal given them.

Given w, each product term is linear (``Y ~ M:W`` becomes a path M -> Y of slope gamma w; a
product of two integrated latents, ``X:X`` included, a constant), so the other latents are
normal: eta | w ~ N(mu(w), G(w) G(w)'), with

    mu(w) = A(w) (zeta-mean given w + c(w)),  G(w) = A(w) F,  A(w) = (I - B(w))^-1,

F the Cholesky factor of the other exogenous latents' and the disturbances' covariance given
w, embedded in the latent rows. The items are then y | w ~ N(nu + Lambda mu(w), Sigma(w)),
Sigma(w) = U U' + Theta, U = Lambda G(w): a factor model. By Woodbury, with the data projected
once per gradient onto Theta^-1 Lambda (P = (y - nu) Theta^-1 Lambda, N x latents) and
M = Lambda' Theta^-1 Lambda, each node needs only latents x latents algebra:

    log|Sigma(w)| = log|Theta| + log|H|,  H = I + G' M G,
    r' Sigma^-1 r = s - 2 mu' P + mu' M mu - (P - M mu)' Q (P - M mu),  Q = G H^-1 G',

s = (y - nu)' Theta^-1 (y - nu), r = y - nu - Lambda mu. H's Cholesky factor and the triangular
solve are written out entry by entry over the batch of nodes (small r x r, r the latents not
integrated): no LAPACK call per node. Per respondent and node there remain a product of P with
a vector and of P's products with Q's upper triangle: latents^2 / 2 numbers. Missing answers:
Theta^-1 restricted to each pattern's answered items (zero elsewhere), so s, P, M and
log|Theta_oo| are per pattern (case-wise, as :func:`bayes_sor.model.marginal.casewise_likelihood`).

Two rules (:func:`respondent_loglik`). The general one above: fixed nodes on the integrated
latents' prior, shared by all respondents (so each node's algebra is done once), NODES per
integrated latent. The usual case, one moderator whose moderated paths make A(w) affine in w
(:attr:`Layout.affine`: Study A, moderated mediation, ``X:X``), takes a faster one: Sigma(w) is
a rank-2 change of one Sigma0 (:class:`Affine`), so log p(y_i | w) is a handful of scalars per
respondent at any w, and the nodes are adapted to each respondent (adaptive Gauss-Hermite, as
lme4's nAGQ or GLLAMM's adaptive quadrature): centred and scaled on the moderator's
distribution given y_i, 4 or 6 of them (:func:`adapted_nodes`) instead of NODES.

The algebra is written once for an array namespace ``xp``, PyTensor's (the likelihood) or
NumPy's (latent scores drawn after the fit, :mod:`bayes_sor.posterior.scores`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import disconnected_grad

from bayes_sor.data.missing import LOG_2PI, Patterns
from bayes_sor.model.affine_kernel import AffineTable, affine_table, table_width
from bayes_sor.model.quadrature_kernel import AdaptedQuadrature, columns
from bayes_sor.spec.matrices import Representation, path_depth
from bayes_sor.spec.partable import ParTable

#: Gauss-Hermite nodes per integrated latent. Study A's log-likelihood at its generating values
#: is within 1e-3 of 64 nodes' from 40 nodes on (16: 0.05, 32: 1.5e-3 off), within 2e-5 at 48
#: (tests/model/test_quadrature.py measures it). The nodes sit on the moderator's prior, so a
#: well-measured moderator (a narrow p(y_i | w)) and respondents far out on it need the most.
#: Several integrated latents take the product grid, NODES ** q nodes: the cost per gradient
#: grows with it (2304 nodes for two moderators).
NODES = 48


def quadrature_reason(partable: ParTable) -> str:
    """Why the quadrature likelihood cannot be used for this model ('' when it can)."""
    if not partable.interactions:
        return "the model has no latent interaction (the marginal likelihood is exact)"
    if partable.ordinal_items():
        return "the model has ordinal items, whose likelihood given the moderator is not normal"
    if partable.observed_structural:
        return "the model has observed structural variables"
    if partable.groups:
        return "the model has several groups, and multiple-group quadrature is not supported"
    exogenous = set(partable.exogenous)
    bare = [f"{y} ~ {a}:{b}" for y, a, b in partable.interactions if not {a, b} & exogenous]
    if bare:
        return f"the product term(s) {bare} have no exogenous latent factor to integrate out"
    return ""


def integrated_latents(partable: ParTable) -> list[str]:
    """The exogenous latents integrated out: one factor of every product term, the declared
    moderator (the second factor) where it is exogenous, as few as possible."""
    exogenous = set(partable.exogenous)
    chosen: list[str] = []
    for _, a, b in partable.interactions:
        if a in chosen or b in chosen:
            continue
        chosen.append(b if b in exogenous else a)
    return [f for f in partable.latents if f in chosen]


@dataclass(frozen=True)
class Layout:
    """Where the integrated latents w sit and how each product term enters given them."""

    integrated: list[int]
    """positions of w among the latents (q of them)"""
    rest: list[int]
    """positions of the other latents (r of them)"""
    slopes: list[tuple[int, int, int, int]]
    """(outcome, cause, w index, parameter): a product with one integrated factor, a path of
    slope gamma w"""
    constants: list[tuple[int, int, int, int]]
    """(outcome, w index, w index, parameter): a product of integrated factors, a constant"""
    depth: int
    """the longest directed path with the product terms as paths: A(w) = I + B + ... + B^depth"""
    affine: bool
    """one integrated latent, and A(w) = (I - B0 - w Gamma)^-1 = A0 + w A0 Gamma A0 with Gamma
    of rank one: the moderated paths share their outcome or their cause, and no moderated
    path's outcome is (or leads to) a moderated path's cause, so (Gamma A0)^2 = 0"""

    @property
    def degree(self) -> int:
        """The degree in w of an affine layout's mean: 3 with products of the moderator (X:X),
        else 2."""
        return 3 if self.constants else 2

    @classmethod
    def of(cls, partable: ParTable, rep: Representation) -> Layout:
        w = [rep.latents.index(f) for f in integrated_latents(partable)]
        slopes, constants = [], []
        step = rep.beta.copy()
        for t in rep.interactions:
            if t.first in w and t.second in w:
                constants.append((t.outcome, w.index(t.first), w.index(t.second), t.param))
                continue
            cause, moderator = (t.first, t.second) if t.second in w else (t.second, t.first)
            slopes.append((t.outcome, cause, w.index(moderator), t.param))
            step[t.outcome, cause] = t.param
        rest = [i for i in range(len(rep.latents)) if i not in w]
        reach = np.eye(len(rep.latents), dtype=int)  # reach[i, j]: j leads to i (or is i)
        for _ in range(len(rep.latents)):
            reach = np.minimum(reach + (rep.beta != rep.zero) @ reach, 1)
        pairs = [(o, c) for o, c, _, _ in slopes]
        affine = (
            len(w) == 1
            and min(len({o for o, _ in pairs}), len({c for _, c in pairs})) <= 1
            and not any(reach[c, o] for o, _ in pairs for _, c in pairs)
        )
        return cls(w, rest, slopes, constants, path_depth(replace(rep, beta=step)), affine)


#: Nodes per respondent of the adapted rule (one moderator, affine layout), by whether products
#: of the moderator (X:X) bend the mean (tests/model/test_quadrature.py measures both against
#: 64 fixed nodes). Without them: Study A's log-likelihood within 2e-5 at 4 adapted nodes over
#: its posterior draws (3: 3e-4, 5: 1e-6), a respondent 4 SD out on the moderator within 2e-5
#: (3: 3e-4). With them, respondents 4 SD out: 1.8e-3 at 4, 1.8e-4 at 5, 2.3e-4 at 6 (the
#: Newton centre's own error).
ADAPTED_NODES = 4
ADAPTED_NODES_SQUARED = 6


def adapted_nodes(layout: Layout) -> int:
    """Adapted nodes per respondent for this layout (ADAPTED_NODES, or ADAPTED_NODES_SQUARED
    with products of the moderator)."""
    return ADAPTED_NODES_SQUARED if layout.constants else ADAPTED_NODES


def gauss_hermite(nodes: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (K, dims) and log weights (K,) of the product Gauss-Hermite rule for a standard
    normal in ``dims`` dimensions (K = nodes ** dims)."""
    x, weight = np.polynomial.hermite_e.hermegauss(nodes)
    log_weight = np.log(weight / np.sqrt(2 * np.pi))
    grid = np.array(list(itertools.product(x, repeat=dims))).reshape(-1, dims)
    logs = np.array(list(itertools.product(log_weight, repeat=dims))).reshape(-1, dims)
    return grid, logs.sum(axis=1)


def matrices(xp: ModuleType, par, rep: Representation) -> tuple:
    """The parameters with the structural zero appended, and the model matrices read from them
    (as :func:`bayes_sor.model.parameters.model_matrices`, for either namespace)."""
    ext = xp.concatenate([par, xp.zeros(1)])
    names = ("lambda", "beta", "psi", "theta", "nu")
    indices = (rep.lambda_, rep.beta, rep.psi, rep.theta, rep.nu)
    return ext, {k: ext[i] for k, i in zip(names, indices, strict=True)}


def conditioned_psi(xp: ModuleType, psi, layout: Layout) -> tuple:
    """(Cholesky factor of Psi_WW, coef = Psi_RW Psi_WW^-1, Cholesky factor of Psi_RR - coef
    Psi_WR): the integrated latents' distribution and the other disturbances given them."""
    w, r = layout.integrated, layout.rest
    psi_rw = psi[np.ix_(r, w)]
    coef = psi_rw @ xp.linalg.inv(psi[np.ix_(w, w)])
    return (
        xp.linalg.cholesky(psi[np.ix_(w, w)]),
        coef,
        xp.linalg.cholesky(psi[np.ix_(r, r)] - coef @ psi_rw.T),
    )


def given_integrated(ext, mats: dict, layout: Layout, w, coef, chol_rest) -> tuple:
    """mu(w) (..., m) and G(w) (..., m, r) at values ``w`` (..., q) of the integrated latents.

    ``coef``, ``chol_rest``: from :func:`conditioned_psi`. Operators only, for either
    namespace.
    """
    m = len(layout.integrated) + len(layout.rest)
    place_w = np.eye(m)[:, layout.integrated]
    place_r = np.eye(m)[:, layout.rest]
    shift = w @ place_w.T + (w @ coef.T) @ place_r.T
    beta = mats["beta"] + 0.0 * w[..., :1, None]  # a batch of B(w), one per value of w
    for outcome, cause, k, param in layout.slopes:
        unit = np.zeros((m, m))
        unit[outcome, cause] = 1.0
        beta = beta + ext[param] * w[..., k, None, None] * unit
    for outcome, j, k, param in layout.constants:
        shift = shift + ext[param] * (w[..., j] * w[..., k])[..., None] * np.eye(m)[outcome]
    factor = (chol_rest.T @ place_r.T).T
    mean, loading = shift, factor
    for _ in range(layout.depth):  # Horner: A(w) x = x + B(w) A(w) x
        mean = shift + (beta @ mean[..., None])[..., 0]
        loading = factor + beta @ loading
    return mean, loading


def unrolled_cholesky(xp: ModuleType, h, size: int) -> list[list]:
    """Lower Cholesky factor of a batch of small SPD matrices (..., size, size), entry by entry
    (elementwise over the batch: no LAPACK call per matrix; measured 1.8x faster per gradient
    than a batched Cholesky and triangular solve on Study A)."""
    low: list[list] = [[None] * size for _ in range(size)]
    for j in range(size):
        low[j][j] = xp.sqrt(h[..., j, j] - sum((low[j][k] ** 2 for k in range(j)), start=0.0))
        for i in range(j + 1, size):
            off = h[..., i, j] - sum((low[i][k] * low[j][k] for k in range(j)), start=0.0)
            low[i][j] = off / low[j][j]
    return low


def forward_solve(xp: ModuleType, low: list[list], rhs):
    """L^-1 rhs for a batch of unrolled factors and right-hand sides (..., size, m)."""
    rows: list = []
    for i in range(len(low)):
        acc = rhs[..., i, :] - sum((low[i][k][..., None] * rows[k] for k in range(i)), start=0.0)
        rows.append(acc / low[i][i][..., None])
    return xp.stack(rows, axis=-2)


def pattern_inverse(xp: ModuleType, cov, patterns: Patterns) -> tuple:
    """Per pattern, the inverse of ``cov``'s answered block (zero elsewhere) and its
    log-determinant: the answered block is factored with the identity on unanswered items
    (log-determinant 0)."""
    padded = xp.linalg.cholesky(xp.where(patterns.pairs, cov[None], np.eye(len(patterns.mask[0]))))
    inv = xp.linalg.inv(padded @ padded.swapaxes(-1, -2)) * patterns.pairs
    return inv, 2 * xp.sum(xp.log(xp.diagonal(padded, axis1=-2, axis2=-1)), axis=-1)


@dataclass(frozen=True)
class Projected:
    """The data projected once per gradient: per respondent s (N,) and P (N, m); per pattern
    M (K, m, m) and log|Theta_oo| + answered log 2 pi (K,); each respondent's pattern."""

    s: object
    p: object
    m: object
    constant: object
    index: np.ndarray


def residual_covariances(rep: Representation) -> np.ndarray:
    """(p, p) True where two items' residuals covary (Theta off its diagonal)."""
    return (rep.theta != rep.zero) & ~np.eye(len(rep.items), dtype=bool)


def project(
    xp: ModuleType,
    mats: dict,
    rep: Representation,
    y: np.ndarray,
    answers=None,
    patterns: Patterns | None = None,
    onto=None,
) -> Projected:
    """s, P and M of answers ``y`` (N, p; NaN where missing). ``answers``: ``y`` with 0 for NaN
    as a data container (default ``y`` itself), so that new answers with the same missingness
    can be swapped in (SBC); ``patterns``: ``y``'s, when known. ``onto``: the (p, k) columns
    projected onto instead of Lambda's (P = (y - nu) Theta^-1 onto, M = onto' Theta^-1 onto)."""
    patterns = patterns or Patterns.of(y)
    mask = patterns.mask
    # one pattern: its row broadcasts, so that no constant of length N enters the graph
    rows = patterns.index if len(mask) > 1 else slice(0, 1)
    answers = np.nan_to_num(y) if answers is None else answers
    resid = (answers - mats["nu"]) * mask[rows]
    lam = mats["lambda"] if onto is None else onto
    theta = mats["theta"]
    answered = mask.sum(axis=1) * LOG_2PI
    if not residual_covariances(rep).any():
        inv = np.where(mask, 1.0, 0.0) / xp.diag(theta)  # (K, p): Theta_oo^-1, 0 elsewhere
        weighted = resid * inv[rows]
        m = (lam.T[None] * inv[:, None, :]) @ lam
        logdet = xp.sum(np.where(mask, 1.0, 0.0) * xp.log(xp.diag(theta)), axis=1)
    else:
        inv, logdet = pattern_inverse(xp, theta, patterns)
        weighted = (inv[rows] @ resid[..., None])[..., 0]
        m = lam.T @ inv @ lam
    return Projected(
        xp.sum(weighted * resid, axis=1), weighted @ lam, m, logdet + answered, patterns.index
    )


def node_loglik(
    xp: ModuleType,
    par,
    rep: Representation,
    layout: Layout,
    y: np.ndarray,
    z: np.ndarray,
    answers=None,
    patterns: Patterns | None = None,
):
    """log p(y_i | w_k) (N, K) at w_k = chol(Psi_WW) z_k, ``z`` (K, q) standard-normal points
    (``answers``, ``patterns``: :func:`project`)."""
    ext, mats = matrices(xp, par, rep)
    chol_w, coef, chol_rest = conditioned_psi(xp, mats["psi"], layout)
    mean, loading = given_integrated(ext, mats, layout, z @ chol_w.T, coef, chol_rest)
    data = project(xp, mats, rep, y, answers, patterns)
    r = len(layout.rest)
    # per pattern g and node k: H = I + G' M G, C = L_H^-1 G' and Q = C'C = G H^-1 G' (m x m)
    transposed = loading.swapaxes(-1, -2)[None]
    low = unrolled_cholesky(xp, transposed @ data.m[:, None] @ loading[None] + np.eye(r), r)
    c = forward_solve(xp, low, transposed)  # (K_pat, K, r, m)
    q = c.swapaxes(-1, -2) @ c
    m_mu = (data.m[:, None] @ mean[None, ..., None])[..., 0]  # (K_pat, K, m)
    q_m_mu = (q @ m_mu[..., None])[..., 0]
    # r' Sigma^-1 r = s - 2 a'P - P'QP + b, a = mu - Q M mu, b = mu'M mu - mu'M Q M mu: per
    # respondent only P and its products, against each node's a and Q (upper triangle)
    a = mean[None] - q_m_mu
    b = xp.sum(mean[None] * m_mu, axis=-1) - xp.sum(m_mu * q_m_mu, axis=-1)
    per_pattern = data.constant[:, None] + 2 * sum(xp.log(low[j][j]) for j in range(r)) + b
    row, col = np.triu_indices(len(rep.latents))
    products = data.p[:, row] * data.p[:, col] * np.where(row == col, 1.0, 2.0)
    upper = q[..., row, col]  # (K_pat, K, m (m + 1) / 2)
    index = data.index
    if (index == 0).all():  # one pattern: two matrix products for all nodes
        linear, quadratic, per_node = data.p @ a[0].T, products @ upper[0].T, per_pattern[:1]
    else:
        linear = xp.sum(a[index] * data.p[:, None, :], axis=-1)
        quadratic = xp.sum(upper[index] * products[:, None, :], axis=-1)
        per_node = per_pattern[index]
    return -0.5 * (per_node + data.s[:, None] - 2 * linear - quadratic)


def log_sum_exp(xp: ModuleType, x):
    """log sum exp over the last axis, for either namespace (the shift by the maximum cancels:
    no gradient through it)."""
    top = xp.max(x, axis=-1, keepdims=True)
    if xp is pt:
        top = disconnected_grad(top)
    return top[..., 0] + xp.log(xp.sum(xp.exp(x - top), axis=-1))


def horner(coefficients: list, w):
    """sum_d c_d w^d at ``w`` (N, K), coefficients (N,) or (1,) in rising degree."""
    out = coefficients[-1][:, None]
    for c in reversed(coefficients[:-1]):
        out = out * w + c[:, None]
    return out


@dataclass(frozen=True)
class Affine:
    """log p(y_i | w) of an affine layout (:attr:`Layout.affine`) as a function of the
    moderator's value w: polynomials in w and a 2 x 2 Woodbury term, their coefficients per
    respondent (pattern constants already taken per respondent).

    With A(w) = A0 + w A0 g h' A0 (Gamma = g h'), U(w) = Lambda A(w) F = U0 + w L1 R1', so
    Sigma(w) = Sigma0 + E C(w) E', E = [L1, U0 R1], C(w) = [[w^2 R1'R1, w], [w, 0]]: a rank-2
    change of Sigma0 = U0 U0' + Theta, itself a factor model: inverted once per gradient and
    pattern by Woodbury from an r x r matrix. The mean is a cubic, Lambda mu(w) = sum_j w^j V_j
    (a quadratic without products of w), so r' Sigma0^-1 r is a polynomial of degree 6 (4) and
    E' Sigma0^-1 r a cubic (quadratic), whose coefficients come from projecting the data once
    onto Sigma0^-1 [V_1, V_2, V_3, E].
    """

    sd: object
    """the moderator's prior SD"""
    quadratic: list
    """r(w)' Sigma0^-1 r(w): 7 coefficients"""
    cross: list
    """E' Sigma0^-1 r(w): two cubics' coefficients"""
    k: object
    """E' Sigma0^-1 E (N or 1, 2, 2)"""
    rho: object
    """R1' R1"""
    constant: object
    """log|Sigma0_oo| + answered log 2 pi (N or 1,)"""
    centre: object
    """the standardised moderator's mean given y_i under the model linearised at w = 0"""
    spread: object
    """its SD"""

    @classmethod
    def of_table(cls, xp: ModuleType, table, constant, basis: AffineBasis) -> Affine:
        """The coefficients read back from their table (:meth:`table`'s layout, centre and
        spread those of the linearised model), ``constant`` the respondents' constants."""
        nq, nx = 2 * basis.degree + 1, basis.degree + 1
        column = [table[:, j] for j in range(table_width(basis.degree))]
        k11, k12, k22, _, _, centre, spread = column[nq + 2 * nx :]
        k = xp.stack([xp.stack([k11, k12], axis=-1), xp.stack([k12, k22], axis=-1)], axis=-2)
        cross = [column[nq : nq + nx], column[nq + nx : nq + 2 * nx]]
        return cls(basis.sd, column[:nq], cross, k, basis.rho, constant, centre, spread)

    def laplace(self, xp: ModuleType, step: float = 0.01) -> tuple:
        """Centre and spread of the standardised moderator's distribution given y_i: from the
        model linearised at w = 0, two Newton steps on the exact log density (central
        differences of ``step``), the spread from the curvature before the second. The
        curvature is kept above 1/4 (a spread of at most twice the prior's), which also keeps
        a step finite."""
        centre, spread = self.centre, self.spread
        offsets = np.array([-step, 0.0, step])
        for _ in range(2):
            u = centre[:, None] + offsets
            g = self.at(xp, self.sd * u) - 0.5 * u**2
            slope = (g[:, 2] - g[:, 0]) / (2 * step)
            curvature = xp.maximum((2 * g[:, 1] - g[:, 0] - g[:, 2]) / step**2, 0.25)
            centre, spread = centre + slope / curvature, curvature**-0.5
        return centre, spread

    def adapted(self, xp: ModuleType, bent: bool) -> tuple:
        """Centre and spread of the adapted nodes (and of the moderator's score cells,
        :mod:`bayes_sor.posterior.scores`): the model linearised at w = 0 is close enough
        unless products of w (X:X, ``bent``) bend the mean; then :meth:`laplace`'s."""
        return self.laplace(xp) if bent else (self.centre, self.spread)

    def at(self, xp: ModuleType, w):
        """log p(y_i | w) at values ``w`` (N, K) of the moderator (not standardised)."""
        polynomials = (horner(c, w) for c in (self.quadratic, *self.cross))
        return self.combine(xp, w, *polynomials)

    def on_nodes(self, xp: ModuleType, centre, spread, z: np.ndarray):
        """log p(y_i | w_ik) at w_ik = sd (centre_i + spread_i z_k): each polynomial re-expanded
        in z per respondent (a Taylor shift, on vectors of N), then evaluated at every node by
        one matrix product with the powers of z, instead of Horner over (N, K) arrays."""
        a, b = self.sd * centre, self.sd * spread
        powers = z[:, None] ** np.arange(len(self.quadratic))

        def in_z(coefficients: list):
            shifted = [c + 0.0 * a for c in coefficients]  # p(a + t) = sum_j shifted_j t^j
            for i in range(len(shifted) - 1):
                for j in range(len(shifted) - 2, i - 1, -1):
                    shifted[j] = shifted[j] + a * shifted[j + 1]
            scaled = [c * b**j for j, c in enumerate(shifted)]
            return xp.stack(scaled, axis=1) @ powers[:, : len(scaled)].T

        w = a[:, None] + b[:, None] * z
        return self.combine(xp, w, *(in_z(c) for c in (self.quadratic, *self.cross)))

    @property
    def degree(self) -> int:
        """The degree of the mean in w (3 with products of w, else 2)."""
        return (len(self.quadratic) - 1) // 2

    def table(self, centre, spread) -> pt.TensorVariable:
        """The coefficients as one (N, columns) matrix, the centre and spread of the
        standardised moderator's nodes last (:func:`~bayes_sor.model.quadrature_kernel.columns`;
        PyTensor only)."""
        k = self.k
        scalars = [k[:, 0, 0], k[:, 0, 1], k[:, 1, 1], self.rho, self.sd, centre, spread]
        return columns(self.quadratic, self.cross, scalars, centre.shape[0])

    def fused(self, centre, spread, nodes: int):
        """log p(y_i) on ``nodes`` adapted nodes per respondent (centre and spread of the
        standardised moderator) by :class:`~bayes_sor.model.quadrature_kernel.AdaptedQuadrature`
        (PyTensor only)."""
        value, _ = AdaptedQuadrature(self.degree, nodes)(self.table(centre, spread))
        return value - 0.5 * self.constant

    def combine(self, xp: ModuleType, w, quadratic, x1, x2):
        """log p(y_i | w) from w (N, K) and the polynomials' values there: r' Sigma0^-1 r and
        E' Sigma0^-1 r = (x1, x2)."""
        k11, k12, k22 = (self.k[:, i, j, None] for i, j in ((0, 0), (0, 1), (1, 1)))
        curve = self.rho * w * w
        # I + C(w) K and C(w) x: Sigma(w)^-1 = S0^-1 - S0^-1 E (I + C K)^-1 C E' S0^-1
        m11, m12 = 1 + w * k12 + curve * k11, w * k22 + curve * k12
        m21, m22 = w * k11, 1 + w * k12
        det = m11 * m22 - m12 * m21
        v1, v2 = curve * x1 + w * x2, w * x1
        woodbury = (x1 * (m22 * v1 - m12 * v2) + x2 * (m11 * v2 - m21 * v1)) / det
        return -0.5 * (self.constant[:, None] + xp.log(det) + quadratic - woodbury)


@dataclass(frozen=True)
class AffineBasis:
    """The parameters' part of :class:`Affine`'s coefficients (no data): the columns the answers
    are projected onto, ``onto`` = [V_1 .. V_degree, L1, U0 R1, U0] (p, degree + 2 + r), the
    items' means and residual covariance, the moderator's prior SD and R1'R1."""

    onto: object
    nu: object
    theta: object
    sd: object
    rho: object
    degree: int


def affine_basis(xp: ModuleType, par, rep: Representation, layout: Layout) -> AffineBasis:
    """The :class:`AffineBasis` of parameters ``par`` (see :class:`Affine`)."""
    ext, mats = matrices(xp, par, rep)
    chol_w, coef, chol_rest = conditioned_psi(xp, mats["psi"], layout)
    m = len(rep.latents)
    unit, beta, lam = np.eye(m), mats["beta"], mats["lambda"]

    def total(x):  # A0 x, Horner as in given_integrated
        out = x
        for _ in range(layout.depth):
            out = x + beta @ out
        return out

    place_r = unit[:, layout.rest]
    e = coef[:, 0] @ place_r.T + unit[layout.integrated[0]]  # zeta given w, per unit of w
    zero = 0.0 * e
    c = sum((ext[p] * unit[o] for o, _, _, p in layout.constants), start=zero)
    outcomes = {o for o, _, _, _ in layout.slopes}
    if len(outcomes) == 1:  # Gamma = g h': g the shared outcome, h the slopes by cause
        g = unit[outcomes.pop()]
        h = sum((ext[p] * unit[cause] for _, cause, _, p in layout.slopes), start=zero)
    else:  # the shared cause (or no moderated path: Gamma = 0)
        g = sum((ext[p] * unit[o] for o, _, _, p in layout.slopes), start=zero)
        h = unit[layout.slopes[0][1]] if layout.slopes else zero
    factor = total((chol_rest.T @ place_r.T).T)  # A0 F
    mean_e, mean_c = total(e), total(c)
    u0, l1, r1 = lam @ factor, lam @ total(g), factor.T @ h
    # Lambda mu(w) = sum_j w^j V_j: a cubic with products of w (X:X), else a quadratic
    means = [lam @ mean_e, lam @ mean_c + l1 * (h @ mean_e), l1 * (h @ mean_c)]
    degree = layout.degree
    basis = xp.stack([*means[:degree], l1, u0 @ r1], axis=1)
    onto = xp.concatenate([basis, u0], axis=1)
    return AffineBasis(onto, mats["nu"], mats["theta"], chol_w[0, 0], r1 @ r1, degree)


def affine_terms(
    xp: ModuleType,
    par,
    rep: Representation,
    layout: Layout,
    y: np.ndarray,
    answers=None,
    patterns: Patterns | None = None,
) -> Affine:
    """The :class:`Affine` coefficients of answers ``y`` (``answers``, ``patterns``:
    :func:`project`)."""
    basis = affine_basis(xp, par, rep, layout)
    degree = basis.degree
    width, r = degree + 2, len(layout.rest)
    patterns = patterns or Patterns.of(y)
    many = len(patterns.mask) > 1
    rows = patterns.index if many else slice(0, 1)
    # Sigma0 = U0 U0' + Theta is a factor model: by Woodbury, Sigma0^-1 = Theta^-1 - Theta^-1
    # U0 H^-1 U0' Theta^-1 with H = I + U0' Theta^-1 U0 (r x r per pattern), so the data are
    # projected onto Theta^-1 [V, E, U0] (N x p x (width + r)), not onto a p x p inverse
    mats = {"nu": basis.nu, "theta": basis.theta}
    data = project(xp, mats, rep, y, answers, patterns, onto=basis.onto)
    h = data.m[:, width:, width:] + np.eye(r)
    h_inv = xp.linalg.inv(h)
    log_h = 2 * xp.sum(xp.log(xp.diagonal(xp.linalg.cholesky(h), axis1=-2, axis2=-1)), axis=-1)
    solved = h_inv @ data.m[:, width:, :width]  # H^-1 U0' Theta^-1 [V, E]
    p_u = data.p[:, width:]  # (y - nu)' Theta^-1 U0

    def by_pattern(x, per_pattern):  # x_i' X_pattern(i) for each respondent's row x_i
        return (x[:, None, :] @ per_pattern[data.index])[:, 0] if many else x @ per_pattern[0]

    weighted = data.p[:, :width] - by_pattern(p_u, solved)  # (y - nu)' Sigma0^-1 [V, E]
    t, f = weighted[:, :degree], weighted[:, degree:]
    # [V, E]' Sigma0^-1 [V, E] per respondent's pattern
    gram = (data.m[:, :width, :width] - data.m[:, :width, width:] @ solved)[rows]
    vv, ev = gram[:, :degree, :degree], gram[:, degree:, :degree]
    quadratic = [data.s - xp.sum(p_u * by_pattern(p_u, h_inv), axis=1)] + [
        (-2 * t[:, d - 1] if d <= degree else 0.0)
        + sum(vv[:, j - 1, d - j - 1] for j in range(max(1, d - degree), min(degree, d - 1) + 1))
        for d in range(1, 2 * degree + 1)
    ]
    cross = [[f[:, a]] + [-ev[:, a, j] for j in range(degree)] for a in (0, 1)]
    sd = basis.sd
    precision = 1 + sd**2 * vv[:, 0, 0]
    return Affine(
        sd,
        quadratic,
        cross,
        gram[:, degree:, degree:],
        basis.rho,
        (data.constant + log_h)[rows],
        sd * t[:, 0] / precision,
        precision**-0.5,
    )


def respondent_loglik(
    xp: ModuleType,
    par,
    rep: Representation,
    layout: Layout,
    y: np.ndarray,
    nodes: int | None = None,
    adapt: bool = True,
    answers=None,
    patterns: Patterns | None = None,
    fused: bool = True,
):
    """log p(y_i) (N,), the integrated latents integrated out by Gauss-Hermite quadrature.

    An affine layout with ``adapt``: ``nodes`` (default :func:`adapted_nodes`) per respondent,
    centred and scaled on the moderator's distribution given y_i under the model linearised at
    w = 0, u_ik = c_i + s_i z_k, the weights corrected by s_i phi(u_ik) / phi(z_k). Otherwise the
    product rule of ``nodes`` (default NODES) per integrated latent on their prior.
    ``fused`` (PyTensor): the adapted rule by fused ops (:func:`fused_loglik`), else by
    PyTensor's own operators.
    """
    if layout.affine:
        count = nodes or (adapted_nodes(layout) if adapt else NODES)
        if xp is pt and fused and adapt and not residual_covariances(rep).any():
            return fused_loglik(par, rep, layout, y, count, answers, patterns)
        terms = affine_terms(xp, par, rep, layout, y, answers, patterns)
        z, log_weight = gauss_hermite(count, 1)
        z = z[:, 0]
        if not adapt:
            return log_sum_exp(xp, terms.at(xp, terms.sd * z[None]) + log_weight)
        centre, spread = terms.adapted(xp, bool(layout.constants))
        if xp is pt and fused:
            return terms.fused(centre, spread, len(z))
        u = centre[:, None] + spread[:, None] * z
        correction = xp.log(spread)[:, None] - 0.5 * u**2 + 0.5 * z**2
        logp = terms.on_nodes(xp, centre, spread, z)
        return log_sum_exp(xp, logp + log_weight + correction)
    z, log_weight = gauss_hermite(nodes or NODES, len(layout.integrated))
    return log_sum_exp(xp, node_loglik(xp, par, rep, layout, y, z, answers, patterns) + log_weight)


def fused_loglik(
    par,
    rep: Representation,
    layout: Layout,
    y: np.ndarray,
    nodes: int,
    answers=None,
    patterns: Patterns | None = None,
) -> pt.TensorVariable:
    """log p(y_i) (N,) of an affine layout on ``nodes`` adapted nodes as PyTensor's graph of
    fused ops: :class:`~bayes_sor.model.affine_kernel.AffineTable` from the parameters'
    :func:`affine_basis` to the coefficient table (Theta diagonal), then
    :class:`~bayes_sor.model.quadrature_kernel.AdaptedQuadrature`; with products of the
    moderator the nodes' centre and spread from :meth:`Affine.laplace` on the table."""
    basis = affine_basis(pt, par, rep, layout)
    patterns = patterns or Patterns.of(y)
    table, constant, _, _ = AffineTable(basis.degree)(
        np.nan_to_num(y) if answers is None else answers,
        patterns.mask.astype(float),
        patterns.index,
        basis.onto,
        basis.nu,
        pt.diag(basis.theta),
        basis.sd,
        basis.rho,
    )
    table = adapted_table(pt, table, constant, basis, bool(layout.constants))
    value, _ = AdaptedQuadrature(basis.degree, nodes)(table)
    return value - 0.5 * constant


def adapted_table(xp: ModuleType, table, constant, basis: AffineBasis, bent: bool):
    """The coefficient table with the adapted nodes' centre and spread in its last columns
    (:meth:`Affine.adapted`): the linearised model's as they are, else :meth:`Affine.laplace`'s
    from the table's polynomials."""
    if not bent:
        return table
    centre, spread = Affine.of_table(xp, table, constant, basis).laplace(xp)
    return xp.concatenate([table[:, :-2], centre[:, None], spread[:, None]], axis=1)


def table_function(
    rep: Representation, layout: Layout, y: np.ndarray, patterns: Patterns
) -> Callable[[np.ndarray], np.ndarray]:
    """A function of one parameter vector: the coefficient table of an affine layout's answers
    ``y`` (:meth:`Affine.table`, adapted centre and spread), by the likelihood's own operations:
    :func:`~bayes_sor.model.affine_kernel.affine_table`, or where items' residuals covary
    PyTensor's graph, compiled once."""
    bent = bool(layout.constants)
    if residual_covariances(rep).any():
        vector = pt.dvector("par")
        # the answers an input, not constants: numba's cache serves every data set of a model
        answers = pt.dmatrix("answers")
        terms = affine_terms(pt, vector, rep, layout, y, answers, patterns)
        compiled = pytensor.function(
            [vector, answers], terms.table(*terms.adapted(pt, bent)), mode="NUMBA"
        )
        filled = np.nan_to_num(y)
        return lambda par: compiled(par, filled)
    data = (np.nan_to_num(y), patterns.mask.astype(float), patterns.index)

    def table(par: np.ndarray) -> np.ndarray:
        # the parameters' part in NumPy (~0.1 ms a draw on Study A): cheaper than loading a
        # compiled function of it
        basis = affine_basis(np, par, rep, layout)
        coefficients, constant, _, _ = affine_table(
            *data, basis.onto, basis.nu, np.diag(basis.theta), basis.sd, basis.rho, basis.degree
        )
        return adapted_table(np, coefficients, constant, basis, bent)

    return table


def quadrature_likelihood(
    par: pt.TensorVariable,
    rep: Representation,
    partable: ParTable,
    y: np.ndarray,
    nodes: int | None = None,
) -> None:
    """The items' log-likelihood with the integrated latents integrated out
    (:func:`respondent_loglik`, ``nodes`` its node count)."""
    layout = Layout.of(partable, rep)
    answers = pm.Data("y", np.nan_to_num(y), dims=("obs", "item"))
    logp = respondent_loglik(pt, par, rep, layout, y, nodes, answers=answers)
    pm.Potential("loglik", pt.sum(logp))
