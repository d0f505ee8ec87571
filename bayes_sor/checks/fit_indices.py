"""Bayesian approximate fit indices (Garnier-Villarreal & Jorgensen 2020, as blavaan).

BRMSEA, BCFI and BTLI per posterior draw from the chi-square discrepancy of each draw, the
effective number of parameters pD and the independence (null) model's chi-square draws; a
multiple-group run's summed over its groups, as blavaan's.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayes_sor.checks.loglik import loglik_tree, loo, marginal_loglik, pointwise_loglik
from bayes_sor.checks.predictive import CaseWise, Implied, implied, ml_discrepancy, n_moments
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
    chi2: np.ndarray,
    p_d: float,
    chi2_null: np.ndarray,
    p_d_null: float,
    n: int,
    moments: int,
    groups: int = 1,
) -> dict[str, np.ndarray]:
    """BRMSEA, BCFI, BTLI per draw (blavaan's ``BayesChiFit``, ``rescale = "devM"``).

    ``moments``: p*, the modelled sample moments of all ``groups`` together; noncentrality
    chi2 - p*, floored at 0; ``n`` the respondents of all groups. As blavaan's BayesChiFit
    (R/ctr_bayes_fit.R: ``p <- p * Ngr``, ``BRMSEA = sqrt(nonc / (dif.ppD * N)) * sqrt(Ngr)``)
    and lavaan's multiple-group RMSEA, BRMSEA is scaled by sqrt(G): each group's discrepancy
    is measured against its own N, not the total.
    """
    df = moments - p_d
    nonc = np.maximum(chi2 - moments, 0.0)
    nonc_null = chi2_null - moments
    null_part = (chi2_null - p_d_null) / (moments - p_d_null)
    return {
        "brmsea": np.sqrt(nonc / (df * n)) * np.sqrt(groups),
        "bcfi": 1 - nonc / nonc_null,
        "btli": (null_part - (chi2 - p_d) / df) / (null_part - 1),
    }


def fit_indices(
    run: Run, chi2: np.ndarray, p_d: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], float]:
    """:func:`bayes_fit_indices` of a run of one or more groups, and the null model's pD.

    ``chi2``: the discrepancy per draw summed over the groups. As blavaan, the null model is
    the independence model of each group (:func:`null_model` of its answers); its chi-square
    draws and its pD add over the groups, and p* counts every group's moments.
    """
    groups = [group for _, group in run.by_group()]
    nulls = [null_model(group, len(chi2), rng) for group in groups]
    chi2_null = np.sum([c for c, _ in nulls], axis=0)
    p_d_null = float(sum(p for _, p in nulls))
    moments = model_moments(run)
    indices = bayes_fit_indices(chi2, p_d, chi2_null, p_d_null, run.n_obs, moments, len(groups))
    return indices, p_d_null


def model_moments(run: Run) -> int:
    """p*: the sample moments the model reproduces, every group's."""
    return sum(n_moments(len(g.items), g.mean is not None) for _, g in run.by_group())


def effective_parameters(
    run: Run, chi2: np.ndarray, p_loo: float | None = None
) -> tuple[float, str]:
    """pD of the Bayesian fit indices: p_loo of the marginal model, else DIC-style (the
    chi-square summed over the groups, at the posterior mean)."""
    if p_loo is not None:
        return p_loo, "p_loo of the marginal model"
    if run.y is not None:
        ll = pointwise_loglik(run, "marginal_approx" if run.partable.interactions else "marginal")
        return float(loo(loglik_tree(run, ll)).p), "p_loo of the marginal model"
    centre = run.draws.mean(axis=0)[None]
    at_mean = sum(
        ml_discrepancy(g.n_obs, g.mean, g.cov, implied(g.rep, centre))[0] for _, g in run.by_group()
    )
    return float(chi2.mean() - at_mean), "DIC-style: mean chi2 - chi2 at the posterior mean"
