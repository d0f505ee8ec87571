"""Posterior predictive pieces in NumPy: implied moments per draw, replicated data, discrepancies.

Everything works on a batch of draws (leading axis) so a check over 1,000 draws is a handful of
array operations. Continuous items: the likelihood-ratio chi-square of lavaan/blavaan against
the saturated model. Ordinal items: the pairwise likelihood-ratio (G^2) of every item pair's
contingency table against the model-implied bivariate-probit cell probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, owens_t

from bayes_sor.data.missing import (
    EM_TOL,
    Patterns,
    PatternStatistics,
    casewise_loglik,
    saturated_moments,
)
from bayes_sor.spec.matrices import Representation, extend, implied_moments

#: Draws per batch when data are replicated (bounds memory: batch x N x items floats).
CHUNK = 100
#: EM tolerance for replicated data sets: their chi-square is then exact to about 1e-4, plenty
#: for a PPP, at half the EM steps of the default.
REPLICATION_TOL = 1e-4
#: Standardised thresholds beyond this are treated as infinite (Phi(-38) is 0 in doubles).
INF_Z = 38.0


@dataclass(frozen=True)
class Implied:
    """Model-implied item means (S, p) and covariances (S, p, p) for S draws."""

    mean: np.ndarray
    cov: np.ndarray
    approximate: bool

    def take(self, index: np.ndarray | slice) -> Implied:
        return Implied(self.mean[index], self.cov[index], self.approximate)


def implied(rep: Representation, draws: np.ndarray) -> Implied:
    """Implied moments of the items (latent responses for ordinal items) for ``draws`` (S, K).

    A group of a multiple-group table (``rep`` of that group) adds its latent means. With
    latent interactions the items are not normal; the moments are then those of the
    normal approximation of :func:`bayes_sor.spec.matrices.implied_moments`, and the means include
    E[a b] = Cov(a, b) of each product term (its outcome's mean shifts by gamma Cov(a, b)).
    """
    m = implied_moments(rep, draws)
    # a multiple-group table's latent means (alpha) shift each group's item means
    shift = np.zeros((*draws.shape[:-1], len(rep.latents)))
    if rep.alpha is not None:
        shift = shift + m.ext[..., rep.alpha]
    for k, t in enumerate(rep.interactions):
        shift[..., t.outcome] += m.gamma[..., k] * m.latent_cov[..., t.first, t.second]
    inv = np.linalg.inv(np.eye(len(rep.latents)) - m.beta)
    latent_mean = np.einsum("...ij,...j->...i", inv, shift)
    mean = m.nu + np.einsum("...ij,...j->...i", m.lambda_, latent_mean)
    return Implied(mean, m.item_cov, bool(rep.interactions))


def thin(n_total: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced draw indices, at most ``max_draws`` of them."""
    if not max_draws or n_total <= max_draws:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, max_draws).round().astype(int))


def batches(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def replicate(moments: Implied, n_obs: int, rng: np.random.Generator) -> np.ndarray:
    """One replicated data set of ``n_obs`` rows per draw: (S, N, p) from MvNormal."""
    chol = np.linalg.cholesky(moments.cov)
    z = rng.standard_normal((moments.mean.shape[0], n_obs, moments.mean.shape[1]))
    return moments.mean[:, None, :] + z @ np.swapaxes(chol, -1, -2)


# ---- continuous items --------------------------------------------------------------------------
def sample_moments(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and biased (divisor N) covariances over the second-to-last axis."""
    mean = y.mean(axis=-2)
    dev = y - mean[..., None, :]
    return mean, np.swapaxes(dev, -1, -2) @ dev / y.shape[-2]


def ml_discrepancy(
    n: int, mean: np.ndarray | None, cov: np.ndarray, moments: Implied
) -> np.ndarray:
    """lavaan's chi-square 2 (logL_saturated - logL_model) = N F_ML, one value per draw.

    F_ML = log|Sigma| + tr(Sigma^-1 S) - log|S| - p + (ybar - mu)' Sigma^-1 (ybar - mu);
    ``mean=None``: no mean structure (covariance-matrix input), the last term is dropped.
    """
    p = moments.mean.shape[-1]
    _, logdet_sigma = np.linalg.slogdet(moments.cov)
    _, logdet_s = np.linalg.slogdet(cov)
    diff = np.zeros_like(moments.mean) if mean is None else mean - moments.mean
    solved = np.linalg.solve(
        moments.cov,
        np.concatenate([np.broadcast_to(cov, moments.cov.shape), diff[..., None]], axis=-1),
    )
    trace = np.trace(solved[..., :p], axis1=-2, axis2=-1)
    quad = np.einsum("...i,...i->...", diff, solved[..., p])
    return n * (logdet_sigma + trace + quad - logdet_s - p)


def n_moments(p: int, means: bool) -> int:
    """p*: the number of modelled sample moments (covariances, and means if modelled)."""
    return p * (p + 1) // 2 + (p if means else 0)


def srmr(cov: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """lavaan's SRMR (Bentler): residual covariances scaled by the observed SDs, i <= j."""
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    resid = (cov - sigma) / (sd[..., :, None] * sd[..., None, :])
    rows, cols = np.triu_indices(cov.shape[-1])
    return np.sqrt(np.mean(resid[..., rows, cols] ** 2, axis=-1))


def correlations(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return cov / (sd[..., :, None] * sd[..., None, :])


def item_moments(y: np.ndarray) -> np.ndarray:
    """Mean, SD, skewness and excess kurtosis of each item over its answers: (..., p, 4)."""
    mean = np.nanmean(y, axis=-2)
    dev = y - mean[..., None, :]
    sd = np.sqrt(np.nanmean(dev**2, axis=-2))
    z = dev / np.where(sd > 0, sd, 1.0)[..., None, :]
    return np.stack([mean, sd, np.nanmean(z**3, axis=-2), np.nanmean(z**4, axis=-2) - 3.0], axis=-1)


@dataclass(frozen=True)
class CaseWise:
    """Data with missing answers, as the chi-square discrepancy needs them: per-pattern
    statistics, the saturated model's ML moments (EM; they replace the sample moments) and its
    log-likelihood. Leading axes hold several data sets (replications) with one set of patterns.
    """

    stats: PatternStatistics
    mean: np.ndarray
    cov: np.ndarray
    saturated: np.ndarray

    @classmethod
    def of(
        cls,
        y: np.ndarray,
        patterns: Patterns | None = None,
        start: Implied | None = None,
        tol: float = EM_TOL,
    ) -> CaseWise:
        """``y`` (..., N, p) with NaN; ``start``: moments to start EM from (those the data
        were replicated from are close to the optimum); ``tol``: EM's tolerance."""
        stats = PatternStatistics.of(y, patterns)
        mean, cov = saturated_moments(
            stats, None if start is None else (start.mean, start.cov), tol
        )
        return cls(stats, mean, cov, casewise_loglik(stats, mean, cov))

    def chisq(self, moments: Implied) -> np.ndarray:
        """2 (logL_saturated - logL_model) per draw: lavaan's chi-square with missing data
        (FIML), N F_ML when nothing is missing."""
        return 2 * (self.saturated - casewise_loglik(self.stats, moments.mean, moments.cov))


# ---- ordinal items -----------------------------------------------------------------------------
def ordinal_codes(y: np.ndarray, categories: list[np.ndarray]) -> np.ndarray:
    """Observed answers -> codes 0..K-1 per item (the rank among the item's categories);
    missing answers (NaN) stay NaN."""
    codes = np.stack([np.searchsorted(c, y[:, j]) for j, c in enumerate(categories)], axis=1)
    missing = np.isnan(y)
    return np.where(missing, np.nan, codes) if missing.any() else codes


def threshold_draws(rep: Representation, draws: np.ndarray) -> list[np.ndarray | None]:
    """Each item's thresholds (S, K-1), sorted within draw; None for continuous items."""
    ext = extend(draws)
    return [
        np.sort(ext[:, rep.thresholds[item]], axis=-1) if item in rep.thresholds else None
        for item in rep.items
    ]


def cut(ystar: np.ndarray, taus: list[np.ndarray | None]) -> np.ndarray:
    """Latent responses (S, N, p) -> category codes of the ordinal items (per-draw
    thresholds); continuous items (``None``) are left as they are."""
    out = ystar.copy()
    for j, tau in enumerate(taus):
        if tau is not None:
            out[..., j] = (ystar[..., j, None] > tau[:, None, :]).sum(axis=-1)
    return out


def bvn_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Standard bivariate normal CDF P(X < h, Y < k; rho) through Owen's T (vectorised).

    Phi2 = [Phi(h) + Phi(k)] / 2 - T(h, a_h) - T(k, a_k) - 1/2 [hk < 0]; zero arguments are
    nudged off zero (the formula divides by them) and infinite ones clipped to +-INF_Z.
    """
    h = np.clip(np.where(h == 0, 1e-12, h), -INF_Z, INF_Z)
    k = np.clip(np.where(k == 0, 1e-12, k), -INF_Z, INF_Z)
    s = np.sqrt(np.maximum(1.0 - rho**2, 1e-15))
    a_h = (k - rho * h) / (h * s)
    a_k = (h - rho * k) / (k * s)
    beta = np.where(h * k < 0, 0.5, 0.0)
    return np.clip(0.5 * (ndtr(h) + ndtr(k)) - owens_t(h, a_h) - owens_t(k, a_k) - beta, 0, 1)


def pairs(p: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(p, k=1)


def pair_probabilities(moments: Implied, taus: list[np.ndarray], j: int, k: int) -> np.ndarray:
    """Model-implied cell probabilities of the (j, k) contingency table: (S, K_j, K_k)."""
    sd = np.sqrt(np.diagonal(moments.cov, axis1=-2, axis2=-1))
    rho = moments.cov[:, j, k] / (sd[:, j] * sd[:, k])

    def grid(i: int) -> np.ndarray:
        inf = np.full((len(taus[i]), 1), np.inf)
        z = (taus[i] - moments.mean[:, i, None]) / sd[:, i, None]
        return np.concatenate([-inf, z, inf], axis=1)

    hj, hk = grid(j), grid(k)
    cdf = bvn_cdf(hj[:, :, None], hk[:, None, :], rho[:, None, None])
    return np.diff(np.diff(cdf, axis=1), axis=2)


def pair_table(codes: np.ndarray, kj: int, kk: int, j: int, k: int) -> np.ndarray:
    """Counts of the (j, k) table for each data set: codes (..., N, p) -> (..., K_j, K_k).
    Respondents who left either item unanswered (NaN) are not counted."""
    flat = codes.reshape(-1, *codes.shape[-2:])
    both = ~(np.isnan(flat[:, :, j]) | np.isnan(flat[:, :, k]))
    flat = np.nan_to_num(flat).astype(np.int64)
    cell = flat[:, :, j] * kk + flat[:, :, k] + (np.arange(flat.shape[0]) * kj * kk)[:, None]
    counts = np.bincount(
        cell.ravel(),
        weights=None if both.all() else both.ravel(),
        minlength=flat.shape[0] * kj * kk,
    )
    return counts.reshape(*codes.shape[:-2], kj, kk)


def g2(table: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Likelihood-ratio statistic 2 sum n log(n / (N p)) per table (0 log 0 = 0)."""
    n = table.sum(axis=(-2, -1), keepdims=True)
    expected = np.maximum(n * prob, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(table > 0, table * np.log(table / expected), 0.0)
    return 2.0 * terms.sum(axis=(-2, -1))


def pairwise_g2(codes: np.ndarray, moments: Implied, taus: list[np.ndarray]) -> np.ndarray:
    """Sum over item pairs of G^2 (observed or replicated tables vs implied probabilities).

    ``codes``: (N, p) observed codes (the same for every draw) or (S, N, p) replicated ones.
    """
    sizes = [t.shape[1] + 1 for t in taus]
    total = np.zeros(moments.mean.shape[0])
    for j, k in zip(*pairs(len(taus)), strict=True):
        prob = pair_probabilities(moments, taus, j, k)
        total += g2(pair_table(codes, sizes[j], sizes[k], j, k), prob)
    return total
