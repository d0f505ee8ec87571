"""One-factor ordinal models for the marginal log-likelihood and the invariance ladder: exact
posterior latent scores on a grid, as ``fit --save-latent`` would store them."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm

from bayes_sor.spec.matrices import Representation, extend

#: the grid the one-factor posterior is evaluated on
GRID = np.linspace(-6, 6, 601)


def probit_loglik(rep: Representation, e: np.ndarray, codes: np.ndarray, eta: np.ndarray):
    """log P(y_i | eta) of a one-factor ordinal model at draw ``e`` (extended) for scores
    ``eta`` (G,) and answers coded 0..K-1 ``codes`` (N, p): (N, G)."""
    out = np.zeros((len(codes), len(eta)))
    for j, item in enumerate(rep.items):
        tau = np.concatenate([[-np.inf], np.sort(e[rep.thresholds[item]]), [np.inf]])
        mu = e[rep.nu][j] + e[rep.lambda_][j, 0] * eta
        sd = np.sqrt(e[rep.theta][j, j])
        c = codes[:, j]
        with np.errstate(divide="ignore"):  # far out on the grid: probability 0
            out += np.log(ndtr((tau[c + 1, None] - mu) / sd) - ndtr((tau[c, None] - mu) / sd))
    return out


def posterior_scores(
    rep: Representation,
    draws: np.ndarray,
    codes: np.ndarray,
    rng: np.random.Generator,
    per_draw: int = 1,
) -> np.ndarray:
    """``per_draw`` draws of p(eta_i | y_i, theta_s) per draw and respondent (inverse CDF on
    :data:`GRID`; the factor's mean is its group's latent mean): (S x per_draw, N, 1)."""
    out = []
    for e in extend(draws):
        mean = 0.0 if rep.alpha is None else e[rep.alpha][0]
        log_post = probit_loglik(rep, e, codes, GRID) + norm.logpdf(
            GRID, mean, np.sqrt(e[rep.psi][0, 0])
        )
        cdf = np.cumsum(np.exp(log_post - log_post.max(axis=1, keepdims=True)), axis=1)
        for _ in range(per_draw):
            u = rng.uniform(size=(len(codes), 1)) * cdf[:, -1:]
            out.append(GRID[(cdf < u).sum(axis=1)][:, None])
    return np.stack(out)
