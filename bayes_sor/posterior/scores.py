"""Latent scores for marginal fits, drawn after sampling.

The marginal likelihood integrates the latent variables out, so NUTS never sees them. Given the
parameters, (eta, y) are jointly normal, and each respondent's scores have the conditional
normal distribution

    eta | y ~ N(K (y - nu), Phi - K Lambda Phi),   K = Phi Lambda' Sigma^-1,

with Phi the latents' implied covariance and Sigma the items'. One draw per posterior draw gives
scores whose spread includes both parameter and score uncertainty (the Bayesian analogue of
regression factor scores, which are the mean K (y - nu) at one parameter value). A respondent
with missing answers is scored from the items they answered (Lambda, Sigma and nu restricted to
them), one missingness pattern at a time.
"""

from __future__ import annotations

import numpy as np

from bayes_sor.data.missing import Patterns, psd_root
from bayes_sor.spec.matrices import Representation, implied_moments


def marginal_latent_scores(
    rep: Representation, par: np.ndarray, y: np.ndarray, seed: int
) -> np.ndarray:
    """One draw of every respondent's latent scores per parameter draw.

    ``par``: (chain, draw, param); ``y``: (obs, item) in ``rep.items`` order, NaN where an
    answer is missing. Returns (chain, draw, obs, latent). Valid for models without latent
    interactions (the only ones the marginal likelihood fits). The conditional covariance is
    factored by :func:`~bayes_sor.data.missing.psd_root`, not Cholesky: observed structural
    variables are known exactly given y, so their conditional variance is 0.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((*par.shape[:2], y.shape[0], len(rep.latents)))
    patterns = Patterns.of(y)
    for chain in range(par.shape[0]):  # one chain at a time bounds the temporaries' memory
        mom = implied_moments(rep, par[chain])
        phi = mom.latent_cov
        for rows, answered in zip(patterns.members(), patterns.mask, strict=True):
            lam = mom.lambda_[:, answered]
            sigma = mom.item_cov[:, answered][:, :, answered]
            gain = np.linalg.solve(sigma, lam @ phi).swapaxes(-1, -2)  # Phi Lam' Sigma^-1
            mean = (y[rows][:, answered][None] - mom.nu[:, None, answered]) @ gain.swapaxes(-1, -2)
            root = psd_root(phi - gain @ lam @ phi)
            noise = rng.standard_normal(mean.shape)
            out[chain][:, rows] = mean + noise @ root.swapaxes(-1, -2)
    return out
