"""Incomplete answers under the normal model: missingness patterns and their statistics.

With item answers missing at random, each respondent contributes the density of the items they
answered: MvNormal(y_o | mu_o, Sigma_oo), the case-wise ("full information", FIML) likelihood.
Respondents who answered the same items form a pattern, and a pattern's contribution depends on
its answers only through their number n_k, mean and scatter (biased covariance):

    logL_k = -n_k/2 [log|Sigma_oo| + tr(Sigma_oo^-1 (S_k + d d')) + p_k log 2 pi],
    d = ybar_k - mu_o,

so the cost grows with the number of patterns, not with N. Every array here is padded to all
p items: a pattern's missing items get mean 0, scatter 0 and, in Sigma, the identity, which
leaves the determinant, the inverse on the observed block and hence every term unchanged. All
patterns are then evaluated as one batch of p x p matrices (the same trick builds the PyMC
likelihood in :mod:`bayes_sor.build`).

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

    @property
    def complete(self) -> bool:
        return bool(self.mask.all())

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

    @property
    def n_obs(self) -> int:
        return int(self.patterns.n.sum())


def psd_root(cov: np.ndarray) -> np.ndarray:
    """R with R R' = cov for (batched) positive semi-definite matrices. Not Cholesky: a
    pattern's scatter is singular when it has fewer respondents than answered items, and so is
    the conditional covariance of an observed structural variable given the data."""
    val, vec = np.linalg.eigh((cov + np.swapaxes(cov, -1, -2)) / 2)
    return vec * np.sqrt(np.clip(val, 0.0, None))[..., None, :]


def padded(cov: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Sigma per pattern: (..., p, p) and (K, p, p) -> (..., K, p, p), identity off the
    answered block."""
    eye = np.eye(cov.shape[-1])
    return np.where(pairs, cov[..., None, :, :], eye)


def casewise_loglik(stats: PatternStatistics, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Total log-likelihood of the answered items at moments (..., p) and (..., p, p).

    Leading axes of the moments and of the statistics broadcast (draws against one data set, or
    one replicated data set per draw).
    """
    pat = stats.patterns
    sigma = padded(cov, pat.pairs)
    diff = np.where(pat.mask, stats.mean - mean[..., None, :], 0.0)
    chol = np.linalg.cholesky(sigma)
    logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    spread = stats.scatter + diff[..., :, None] * diff[..., None, :]
    trace = np.trace(np.linalg.solve(sigma, spread), axis1=-2, axis2=-1)
    answered = pat.mask.sum(axis=-1)
    return -0.5 * (pat.n * (logdet + trace + answered * LOG_2PI)).sum(axis=-1)


def _start(stats: PatternStatistics) -> tuple[np.ndarray, np.ndarray]:
    """Each item's mean and variance over the respondents who answered it (covariances 0)."""
    pat = stats.patterns
    weight = pat.n[:, None] * pat.mask
    count = weight.sum(axis=0)
    mean = (weight * stats.mean).sum(axis=-2) / count
    square = np.diagonal(stats.scatter, axis1=-2, axis2=-1) + stats.mean**2
    var = (weight * square).sum(axis=-2) / count - mean**2
    return mean, var[..., None] * np.eye(len(count))


def saturated_moments(stats: PatternStatistics, start: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """ML mean (..., p) and covariance (..., p, p) of the unrestricted normal model, by EM.

    E-step per pattern, with B = Sigma W (W: Sigma_oo^-1 padded with zeros), whose observed rows
    are the identity and missing rows the regression Sigma_mo Sigma_oo^-1: the pattern's
    expected answers are mu + B (ybar - mu), their scatter B S B', and the conditional
    covariance of the missing answers Sigma - B Sigma. Complete data: one step, the sample
    moments. ``start``: (mean, cov) to start from (e.g. the moments that replicated data were
    drawn from); default each item's answered mean and variance.
    """
    pat = stats.patterns
    mean, cov = start if start is not None else _start(stats)
    weight = pat.n / pat.n.sum()
    pairs = pat.pairs
    for _ in range(EM_STEPS):
        inverse = np.where(pairs, np.linalg.inv(padded(cov, pairs)), 0.0)
        gain = cov[..., None, :, :] @ inverse
        expected = mean[..., None, :] + np.einsum("...ij,...j->...i", gain,
                                                  stats.mean - mean[..., None, :])
        second = (expected[..., :, None] * expected[..., None, :]
                  + gain @ stats.scatter @ np.swapaxes(gain, -1, -2)
                  + cov[..., None, :, :] - gain @ cov[..., None, :, :])
        new_mean = np.einsum("k,...ki->...i", weight, expected)
        new_cov = (np.einsum("k,...kij->...ij", weight, second)
                   - new_mean[..., :, None] * new_mean[..., None, :])
        change = max(np.abs(new_mean - mean).max(), np.abs(new_cov - cov).max())
        mean, cov = new_mean, (new_cov + np.swapaxes(new_cov, -1, -2)) / 2
        if change < EM_TOL:
            break
    return mean, cov


def observed_moments(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased covariance of answers (N, p): the sample moments of complete data, the
    saturated model's ML (EM) moments when answers are missing."""
    if not np.isnan(y).any():
        mean = y.mean(axis=0)
        return mean, (y - mean).T @ (y - mean) / len(y)
    return saturated_moments(PatternStatistics.of(y))


def pointwise_loglik(y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log MvNormal(y_i,o | mu_s,o, Sigma_s,oo) per draw and respondent: (S, N).

    ``y`` (N, p) with NaN; ``mean`` (S, p) or (S, N, p) (conditional means per respondent);
    ``cov`` (S, p, p). One batch of Cholesky factors per pattern.
    """
    patterns = Patterns.of(y)
    mean = np.broadcast_to(mean[:, None, :] if mean.ndim == 2 else mean,
                           (cov.shape[0], *y.shape))
    out = np.zeros((cov.shape[0], y.shape[0]))
    for rows, observed in zip(patterns.members(), patterns.mask, strict=True):
        if not observed.any():
            continue
        diff = y[rows][:, observed][None] - mean[:, rows][..., observed]
        chol = np.linalg.cholesky(cov[:, observed][:, :, observed])
        z = np.linalg.solve(chol, np.swapaxes(diff, -1, -2))
        logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        out[:, rows] = -0.5 * ((z**2).sum(axis=-2) + logdet[:, None]
                               + observed.sum() * LOG_2PI)
    return out
