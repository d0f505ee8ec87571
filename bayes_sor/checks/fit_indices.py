"""Bayesian approximate fit indices (Garnier-Villarreal & Jorgensen 2020, as blavaan).

BRMSEA, BCFI and BTLI per posterior draw from the chi-square discrepancy of each draw, the
effective number of parameters pD and the independence (null) model's chi-square draws.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayes_sor.checks.loglik import loglik_tree, loo, marginal_loglik, pointwise_loglik
from bayes_sor.checks.predictive import CaseWise, Implied, implied, ml_discrepancy
from bayes_sor.runs.rundir import Run


def null_model(run: Run, n_draws: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Chi-square draws and pD of the independence model, from its closed-form posterior.

    Independent normal items with free means and variances under the Jeffreys prior
    p(mu, sigma^2) ~ 1 / sigma^2: sigma_j^2 | y ~ Inv-Gamma((N-1)/2, N s_jj / 2),
    mu_j | sigma_j^2, y ~ N(ybar_j, sigma_j^2 / N). (blavaan fits the null model by MCMC
    under its default priors; with N in the hundreds the two agree closely.) pD is p_loo with
    raw data, else the DIC-style mean(chi2) - chi2(posterior mean). With missing answers each
    item has its own N (its answers), ybar and s, and the chi-square is the case-wise one.
    """
    n, s = run.n_obs, np.diag(run.cov)
    mean = np.zeros(len(s)) if run.mean is None else run.mean
    incomplete = run.y is not None and np.isnan(run.y).any()
    if incomplete:
        n = (~np.isnan(run.y)).sum(axis=0)
        mean, s = np.nanmean(run.y, axis=0), np.nanvar(run.y, axis=0)
    var = (n * s / 2) / rng.gamma((n - 1) / 2, size=(n_draws, len(s)))
    mu = mean + rng.standard_normal(var.shape) * np.sqrt(var / n)
    moments = Implied(mu, var[:, :, None] * np.eye(len(s)), False)
    if incomplete:
        chi2 = CaseWise.of(run.y).chisq(moments)
    else:
        chi2 = ml_discrepancy(run.n_obs, run.mean, run.cov, moments)
    if run.y is None:
        centre = Implied(mu.mean(0)[None], var.mean(0)[None, :, None] * np.eye(len(s)), False)
        return chi2, float(chi2.mean() - ml_discrepancy(run.n_obs, run.mean, run.cov, centre)[0])
    ll = xr.DataArray(marginal_loglik(run.y, moments)[None], dims=("chain", "draw", "obs"))
    posterior = xr.Dataset({"mu": (("chain", "draw", "item"), mu[None])})
    tree = xr.DataTree.from_dict(
        {"posterior": posterior, "log_likelihood": xr.Dataset({"items": ll})}
    )
    return chi2, float(loo(tree).p)


def bayes_fit_indices(
    chi2: np.ndarray, p_d: float, chi2_null: np.ndarray, p_d_null: float, n: int, moments: int
) -> dict[str, np.ndarray]:
    """BRMSEA, BCFI, BTLI per draw (blavaan's ``BayesRelFit``, ``rescale = "devM"``).

    ``moments``: p*, the modelled sample moments; noncentrality chi2 - p*, floored at 0.
    """
    df = moments - p_d
    nonc = np.maximum(chi2 - moments, 0.0)
    nonc_null = chi2_null - moments
    null_part = (chi2_null - p_d_null) / (moments - p_d_null)
    return {
        "brmsea": np.sqrt(nonc / (df * n)),
        "bcfi": 1 - nonc / nonc_null,
        "btli": (null_part - (chi2 - p_d) / df) / (null_part - 1),
    }


def effective_parameters(
    run: Run, chi2: np.ndarray, p_loo: float | None = None
) -> tuple[float, str]:
    """pD of the Bayesian fit indices: p_loo of the marginal model, else DIC-style."""
    if p_loo is not None:
        return p_loo, "p_loo of the marginal model"
    if run.y is not None:
        ll = pointwise_loglik(run, "marginal_approx" if run.partable.interactions else "marginal")
        return float(loo(loglik_tree(run, ll)).p), "p_loo of the marginal model"
    centre = implied(run.rep, run.draws.mean(axis=0)[None])
    at_mean = ml_discrepancy(run.n_obs, run.mean, run.cov, centre)[0]
    return float(chi2.mean() - at_mean), "DIC-style: mean chi2 - chi2 at the posterior mean"
