"""Incomplete answers under the normal model: missingness patterns and their statistics.

With item answers missing at random, each respondent contributes the density of the items they
answered: MvNormal(y_o | mu_o, Sigma_oo), the case-wise ("full information", FIML) likelihood.
Respondents who answered the same items form a pattern, and a pattern's contribution depends on
its answers only through their number n_k, mean and scatter (biased covariance):

    logL_k = -n_k/2 [log|Sigma_oo| + tr(Sigma_oo^-1 (S_k + d d')) + p_k log 2 pi],
    d = ybar_k - mu_o,

so the cost grows with the number of patterns, not with N. Pattern means and scatters are
stored padded to all p items (0 at unanswered items). Here the inverse and determinant of each
Sigma_oo come from the precision matrix Sigma^-1 and the small block of the unanswered items
(Schur complements). :func:`bayes_sor.model.marginal.casewise_likelihood` evaluates the same
likelihood with the same identities in PyTensor (for sampling); this NumPy version serves draws
in bulk (log-likelihood for LOO, posterior predictive checks), where a compiled graph per call
would cost more than it saves.

The saturated model (unrestricted mean and covariance) is fitted by EM (Dempster, Laird & Rubin
1977; lavaan's ``h1`` for ``missing = "ml"``), also from the pattern statistics. Its moments
stand in for the sample mean and covariance wherever those are compared with the model (SRMR,
residual correlations, the chi-square discrepancy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_2PI = np.log(2 * np.pi)
#: EM stops when no mean or covariance entry moves by more than this (or after EM_STEPS).
EM_TOL = 1e-9
EM_STEPS = 2000


@dataclass(frozen=True)
class Patterns:
    """Respondents grouped by the items they answered."""

    mask: np.ndarray
    """(K, p) True where the pattern's respondents answered the item."""
    index: np.ndarray
    """(N,) the pattern of each respondent."""

    @classmethod
    def of(cls, y: np.ndarray) -> Patterns:
        """The patterns of answers ``y`` (N, p), NaN where an answer is missing."""
        mask, index = np.unique(~np.isnan(y), axis=0, return_inverse=True)
        return cls(mask, index.reshape(-1))

    @property
    def n(self) -> np.ndarray:
        """(K,) respondents per pattern."""
        return np.bincount(self.index, minlength=len(self.mask)).astype(float)

    @property
    def pairs(self) -> np.ndarray:
        """(K, p, p) True where both items of a pair were answered."""
        return self.mask[:, :, None] & self.mask[:, None, :]

    def members(self) -> list[np.ndarray]:
        """The respondents (row positions) of each pattern."""
        order = np.argsort(self.index, kind="stable")
        return np.split(order, np.cumsum(self.n.astype(int))[:-1])


@dataclass(frozen=True)
class PatternStatistics:
    """Per-pattern n, mean (..., K, p) and scatter (..., K, p, p), zero at unanswered items.

    Leading axes (``...``) hold several data sets with the same patterns (replications).
    """

    patterns: Patterns
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, patterns: Patterns | None = None) -> PatternStatistics:
        """Statistics of answers ``y`` (..., N, p); ``patterns`` default to those of ``y``
        (replicated data sets must carry the observed data's NaN)."""
        patterns = patterns or Patterns.of(y[(0,) * (y.ndim - 2)])
        filled = np.nan_to_num(y)
        means, scatters = [], []
        for rows, observed in zip(patterns.members(), patterns.mask, strict=True):
            block = filled[..., rows, :] * observed
            mean = block.mean(axis=-2)
            dev = (block - mean[..., None, :]) * observed
            means.append(mean)
            scatters.append(np.swapaxes(dev, -1, -2) @ dev / len(rows))
        return cls(patterns, np.stack(means, axis=-2), np.stack(scatters, axis=-3))


def psd_root(cov: np.ndarray) -> np.ndarray:
    """R with R R' = cov for (batched) positive semi-definite matrices. Not Cholesky: a
    pattern's scatter is singular when it has fewer respondents than answered items, and so is
    the conditional covariance of an observed structural variable given the data."""
    val, vec = np.linalg.eigh((cov + np.swapaxes(cov, -1, -2)) / 2)
    return vec * np.sqrt(np.clip(val, 0.0, None))[..., None, :]


def casewise_loglik(stats: PatternStatistics, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Total log-likelihood of the answered items at moments (..., p) and (..., p, p).

    Leading axes of the moments and of the statistics broadcast (draws against one data set, or
    one replicated data set per draw). Through the precision matrix P = Sigma^-1: with m a
    pattern's unanswered items, Sigma_oo^-1 = P_oo - P_om P_mm^-1 P_mo and
    log|Sigma_oo| = log|Sigma| + log|P_mm|, so only the small blocks P_mm are factorised.
    """
    pat = stats.patterns
    precision = np.linalg.inv(cov)
    batch = np.broadcast_shapes(cov.shape[:-2], stats.mean.shape[:-2])
    logdet = np.array(
        np.broadcast_to(np.linalg.slogdet(cov)[1][..., None], (*batch, len(pat.mask)))
    )
    diff = np.where(pat.mask, stats.mean - mean[..., None, :], 0.0)
    solved = np.einsum("...ij,...kj->...ki", precision, diff)
    quad = (solved * diff).sum(axis=-1)
    spread = pat.n > 1  # a single respondent's scatter is 0
    trace = np.zeros_like(quad)
    trace[..., spread] = np.einsum(
        "...ij,...kji->...k", precision, stats.scatter[..., spread, :, :]
    )
    for rows, missing in unanswered_blocks(pat):
        block = precision[..., missing[:, :, None], missing[:, None, :]]
        inverse = np.linalg.inv(block)
        u = solved[..., rows[:, None], missing]
        quad[..., rows] -= np.einsum("...ka,...kab,...kb->...k", u, inverse, u)
        logdet[..., rows] += np.linalg.slogdet(block)[1]
        wide = spread[rows]
        if wide.any():
            p_mo = precision[..., missing[wide], :]
            v = p_mo @ stats.scatter[..., rows[wide], :, :] @ np.swapaxes(p_mo, -1, -2)
            trace[..., rows[wide]] -= (inverse[..., wide, :, :] * v).sum(axis=(-2, -1))
    answered = pat.mask.sum(axis=-1)
    return -0.5 * (pat.n * (logdet + quad + trace + answered * LOG_2PI)).sum(axis=-1)


def unanswered_blocks(patterns: Patterns) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patterns grouped by how many items they left unanswered (q >= 1): the patterns'
    positions (K_q,) and their unanswered items (K_q, q)."""
    missing = ~patterns.mask
    count = missing.sum(axis=1)
    return [
        (np.flatnonzero(count == q), np.nonzero(missing[count == q])[1].reshape(-1, q))
        for q in np.unique(count[count > 0])
    ]


def _start(stats: PatternStatistics) -> tuple[np.ndarray, np.ndarray]:
    """Each item's mean and variance over the respondents who answered it (covariances 0)."""
    pat = stats.patterns
    weight = pat.n[:, None] * pat.mask
    count = weight.sum(axis=0)
    mean = (weight * stats.mean).sum(axis=-2) / count
    square = np.diagonal(stats.scatter, axis1=-2, axis2=-1) + stats.mean**2
    var = (weight * square).sum(axis=-2) / count - mean**2
    return mean, var[..., None] * np.eye(len(count))


def saturated_moments(
    stats: PatternStatistics,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    tol: float = EM_TOL,
) -> tuple[np.ndarray, np.ndarray]:
    """ML mean (..., p) and covariance (..., p, p) of the unrestricted normal model, by EM.

    E-step from the precision matrix P = Sigma^-1, so only the small block of each pattern's
    unanswered items m is inverted: given the answers o, y_m has covariance C = P_mm^-1 and
    mean mu_m + R (y_o - mu_o) with R = -C P_mo. With G the gain (identity on the answered
    items, R in the rows m), a pattern adds n_k [e e' + G S G' + C] to the expected scatter,
    e = mu + G (ybar - mu). Complete data: one step, the sample moments. ``start``: (mean, cov)
    to start from (e.g. the moments that replicated data were drawn from); default each item's
    answered mean and variance.
    """
    pat = stats.patterns
    mean, cov = start if start is not None else _start(stats)
    weight = pat.n / pat.n.sum()
    blocks = unanswered_blocks(pat)
    spread = pat.n > 1  # a single respondent's scatter is 0: no gain needed
    scatter = stats.scatter[..., spread, :, :]
    diagonal = pat.mask[spread, :, None] * np.eye(pat.mask.shape[1])
    position = np.cumsum(spread) - 1  # of a spread pattern among the spread ones
    for _ in range(EM_STEPS):
        precision = np.linalg.inv(cov)
        expected = np.array(
            np.broadcast_to(
                stats.mean,
                np.broadcast_shapes(stats.mean.shape, mean.shape[:-1] + stats.mean.shape[-2:]),
            )
        )
        gain = np.array(np.broadcast_to(diagonal, expected.shape[:-2] + diagonal.shape))
        conditional = np.zeros_like(cov)
        for rows, missing in blocks:
            c = np.linalg.inv(precision[..., missing[:, :, None], missing[:, None, :]])
            r = -c @ (precision[..., missing, :] * pat.mask[rows][:, None, :])
            dev = stats.mean[..., rows, :] - mean[..., None, :]
            expected[..., rows[:, None], missing] = mean[..., missing] + np.einsum(
                "...kqj,...kj->...kq", r, dev
            )
            wide = spread[rows]
            gain[..., position[rows[wide]][:, None], missing[wide], :] = r[..., wide, :, :]
            np.add.at(
                conditional,
                (Ellipsis, missing[:, :, None], missing[:, None, :]),
                weight[rows, None, None] * c,
            )
        second = (
            np.einsum("k,...ki,...kj->...ij", weight, expected, expected)
            + np.einsum(
                "k,...kij->...ij", weight[spread], gain @ scatter @ np.swapaxes(gain, -1, -2)
            )
            + conditional
        )
        new_mean = np.einsum("k,...ki->...i", weight, expected)
        new_cov = second - new_mean[..., :, None] * new_mean[..., None, :]
        change = max(np.abs(new_mean - mean).max(), np.abs(new_cov - cov).max())
        mean, cov = new_mean, (new_cov + np.swapaxes(new_cov, -1, -2)) / 2
        if change < tol:
            break
    return mean, cov


def observed_moments(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased covariance of answers (N, p): the sample moments of complete data, the
    saturated model's ML (EM) moments when answers are missing."""
    if not np.isnan(y).any():
        mean = y.mean(axis=0)
        return mean, (y - mean).T @ (y - mean) / len(y)
    return saturated_moments(PatternStatistics.of(y))


def casewise_pointwise_loglik(y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log MvNormal(y_i,o | mu_s,o, Sigma_s,oo) per draw and respondent: (S, N).

    ``y`` (N, p) with NaN; ``mean`` (S, p) or (S, N, p) (conditional means per respondent);
    ``cov`` (S, p, p). One batch of Cholesky factors per pattern.
    """
    patterns = Patterns.of(y)
    mean = np.broadcast_to(mean[:, None, :] if mean.ndim == 2 else mean, (cov.shape[0], *y.shape))
    out = np.zeros((cov.shape[0], y.shape[0]))
    for rows, observed in zip(patterns.members(), patterns.mask, strict=True):
        if not observed.any():
            continue
        diff = y[rows][:, observed][None] - mean[:, rows][..., observed]
        chol = np.linalg.cholesky(cov[:, observed][:, :, observed])
        z = np.linalg.solve(chol, np.swapaxes(diff, -1, -2))
        logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        out[:, rows] = -0.5 * ((z**2).sum(axis=-2) + logdet[:, None] + observed.sum() * LOG_2PI)
    return out
