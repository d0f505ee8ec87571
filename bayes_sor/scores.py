"""Latent scores for marginal fits, drawn after sampling.

The marginal likelihood integrates the latent variables out, so NUTS never sees them. Given the
parameters, (eta, y) are jointly normal, and each respondent's scores have the conditional
normal distribution

    eta | y ~ N(K (y - nu), Phi - K Lambda Phi),   K = Phi Lambda' Sigma^-1,

with Phi the latents' implied covariance and Sigma the items'. One draw per posterior draw gives
scores whose spread includes both parameter and score uncertainty (the Bayesian analogue of
regression factor scores, which are the mean K (y - nu) at one parameter value).
"""

from __future__ import annotations

import numpy as np

from bayes_sor.matrices import Representation, implied_moments


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """A square root of (batched) PSD matrices. Not Cholesky: observed structural variables
    are known exactly given y, so their conditional variance is 0 and the matrix singular."""
    val, vec = np.linalg.eigh((cov + np.swapaxes(cov, -1, -2)) / 2)
    return vec * np.sqrt(np.clip(val, 0.0, None))[..., None, :]


def marginal_latent_scores(rep: Representation, par: np.ndarray, y: np.ndarray,
                           seed: int) -> np.ndarray:
    """One draw of every respondent's latent scores per parameter draw.

    ``par``: (chain, draw, param); ``y``: (obs, item) in ``rep.items`` order. Returns
    (chain, draw, obs, latent). Valid for models without latent interactions (the only ones
    the marginal likelihood fits).
    """
    rng = np.random.default_rng(seed)
    out = np.empty((*par.shape[:2], y.shape[0], len(rep.latents)))
    for chain in range(par.shape[0]):  # one chain at a time bounds the temporaries' memory
        mom = implied_moments(rep, par[chain])
        lam, phi, sigma = mom.lambda_, mom.latent_cov, mom.item_cov
        gain = np.linalg.solve(sigma, lam @ phi).swapaxes(-1, -2)  # Phi Lam' Sigma^-1
        mean = (y[None] - mom.nu[:, None, :]) @ gain.swapaxes(-1, -2)
        root = _sqrt_psd(phi - gain @ lam @ phi)
        noise = rng.standard_normal(mean.shape)
        out[chain] = mean + noise @ root.swapaxes(-1, -2)
    return out
