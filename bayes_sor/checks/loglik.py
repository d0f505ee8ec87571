"""Pointwise (per respondent) log-likelihood of a run, and LOO through ArviZ.

Which log-likelihood a run gets (:func:`loglik_kind`):

- ``marginal``: items ~ MvNormal(mu(theta), Sigma(theta)) with the latent variables integrated
  out; exact for linear models with continuous items, whichever likelihood was sampled.
- ``marginal_approx``: the same with the normal approximation of the implied moments, for
  latent interactions when the latent scores were not stored (the items are not normal there).
- ``conditional``: for a fit that sampled the latent scores (conditional likelihood) and stored
  them (``fit --save-latent``): the items given each respondent's scores; ordered-probit
  interval probabilities for ordinal items. LOO then predicts a respondent's answers given their
  own latent scores, a different target from the marginal one, and its Pareto k values are
  often high. (Models with observed structural variables always use the marginal form.)
- ``None``: ordinal items without stored latent scores (no closed-form marginal).

Missing answers (NaN, ``fit --missing model``): each respondent's log-likelihood is that of the
items they answered (the marginal density of the answered sub-vector; the conditional density
of the answered cells).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy.special import log_ndtr

from bayes_sor.checks.predictive import Implied, batches, implied, ordinal_codes
from bayes_sor.data.missing import casewise_pointwise_loglik
from bayes_sor.runs.rundir import Run
from bayes_sor.spec.matrices import extend

KINDS = ("marginal", "marginal_approx", "conditional")
LOG_2PI = np.log(2 * np.pi)


def loglik_kind(run: Run) -> tuple[str | None, str]:
    """The kind of pointwise log-likelihood available for ``run`` and a sentence saying why."""
    if run.y is None:
        return None, "covariance-matrix input: no respondents, so no pointwise log-likelihood"
    stored = (
        run.likelihood == "conditional"
        and run.latent_scores() is not None
        and not run.partable.observed_structural
    )
    if run.partable.ordinal_items():
        if stored:
            return "conditional", (
                "ordinal items: log-likelihood given the stored latent scores (ordered probit)"
            )
        return None, (
            "ordinal items and no stored latent scores: no pointwise log-likelihood "
            "(refit with --save-latent for LOO)"
        )
    if run.partable.interactions:
        if stored:
            return "conditional", (
                "latent interaction: log-likelihood given the stored latent scores"
            )
        return "marginal_approx", (
            "latent interaction: marginal log-likelihood under the "
            "normal approximation of the implied moments (latent scores "
            "not stored)"
        )
    return "marginal", (
        "marginal multivariate normal log-likelihood (latent variables integrated out)"
    )


def mvn_logpdf(diff: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log MvNormal(diff | 0, cov) for residuals (S, N, p) and covariances (S, p, p): (S, N)."""
    chol = np.linalg.cholesky(cov)
    # solve L z = diff': the batch of triangular solves as one general solve
    z = np.linalg.solve(chol, np.swapaxes(diff, -1, -2))
    logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return -0.5 * ((z**2).sum(axis=-2) + logdet[:, None] + diff.shape[-1] * LOG_2PI)


def marginal_loglik(y: np.ndarray, moments: Implied) -> np.ndarray:
    """log MvNormal(y_i | mu_s, Sigma_s) of the answered items: (S, N)."""
    out = np.empty((moments.mean.shape[0], y.shape[0]))
    incomplete = np.isnan(y).any()
    for idx in batches(moments.mean.shape[0]):
        if incomplete:
            out[idx] = casewise_pointwise_loglik(y, moments.mean[idx], moments.cov[idx])
        else:
            out[idx] = mvn_logpdf(y[None, :, :] - moments.mean[idx, None, :], moments.cov[idx])
    return out


def _log_interval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)), mirrored into the lower tail where log Phi is exact."""
    flip = a > 0
    low, high = np.where(flip, -b, a), np.where(flip, -a, b)
    log_high = log_ndtr(high)
    with np.errstate(divide="ignore"):
        return log_high + np.log1p(-np.exp(log_ndtr(low) - log_high))


def conditional_loglik(run: Run, draws: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """log p(y_i | eta_i, theta) summed over items, for latent scores eta (S, N, m): (S, N).

    Ordinal items contribute their ordered-probit interval probability, continuous items their
    normal density (multivariate when they have residual covariances).
    """
    rep = run.rep
    ext = extend(draws)
    lam, theta, nu = ext[:, rep.lambda_], ext[:, rep.theta], ext[:, rep.nu]
    mu = nu[:, None, :] + eta @ np.swapaxes(lam, -1, -2)
    ordinal = set(run.partable.ordinal_items())
    is_ord = np.array([item in ordinal for item in rep.items])
    out = np.zeros(mu.shape[:2])
    for j in np.flatnonzero(is_ord):
        out += _ordinal_term(run, ext, mu[..., j], np.sqrt(theta[:, j, j])[:, None], j)
    cont = np.flatnonzero(~is_ord)
    if len(cont) and np.isnan(run.y[:, cont]).any():
        out += casewise_pointwise_loglik(run.y[:, cont], mu[..., cont], theta[:, cont][:, :, cont])
    elif len(cont):
        resid = run.y[None][..., cont] - mu[..., cont]
        out += mvn_logpdf(resid, theta[:, cont][:, :, cont])
    return out


def _ordinal_term(run: Run, ext: np.ndarray, mu: np.ndarray, sd: np.ndarray, j: int) -> np.ndarray:
    """log P(observed category of item j | mu) for each draw and respondent (0 where the item
    was not answered): (S, N)."""
    item = run.rep.items[j]
    tau = np.sort(ext[:, run.rep.thresholds[item]], axis=-1)
    inf = np.full((tau.shape[0], 1), np.inf)
    padded = np.concatenate([-inf, tau, inf], axis=1)
    answers = run.y[:, j]
    answered = ~np.isnan(answers)
    code = ordinal_codes(answers[:, None], [np.unique(answers[answered])])[:, 0]
    code = np.where(answered, code, 0).astype(int)
    lower = padded[:, code]
    upper = padded[:, code + 1]
    return np.where(answered, _log_interval((lower - mu) / sd, (upper - mu) / sd), 0.0)


def pointwise_loglik(run: Run, kind: str | None = None) -> xr.DataArray | None:
    """(chain, draw, obs) log-likelihood of each respondent, or None when unavailable."""
    kind = kind or loglik_kind(run)[0]
    if kind is None:
        return None
    draws = run.draws
    if kind == "conditional":
        eta = run.latent_scores().reshape(draws.shape[0], run.n_obs, -1)
        ll = np.concatenate(
            [conditional_loglik(run, draws[i], eta[i]) for i in batches(draws.shape[0], 50)]
        )
    else:
        ll = _marginal_by_group(run, draws)
    return xr.DataArray(
        ll.reshape(*run.par.shape[:2], run.n_obs), dims=("chain", "draw", "obs"), name="items"
    )


def _marginal_by_group(run: Run, draws: np.ndarray) -> np.ndarray:
    """Marginal log-likelihood of each respondent under their own group's implied moments, in
    the run's respondent order: (S, N)."""
    if not run.partable.groups:
        return marginal_loglik(run.y, implied(run.rep, draws))
    out = np.empty((len(draws), run.n_obs))
    for label, group in run.by_group():
        out[:, run.labels == label] = marginal_loglik(group.y, implied(group.rep, draws))
    return out


def loglik_tree(run: Run, ll: xr.DataArray, posterior: xr.Dataset | None = None) -> xr.DataTree:
    """A DataTree with ``posterior`` and ``log_likelihood`` groups, as ArviZ's LOO expects."""
    posterior = posterior if posterior is not None else run.posterior[["par"]]
    return xr.DataTree.from_dict(
        {"posterior": posterior, "log_likelihood": xr.Dataset({"items": ll})}
    )


def loo(tree: xr.DataTree):
    """PSIS-LOO of a tree from :func:`loglik_tree` (ArviZ's Pareto-k warnings silenced)."""
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    import arviz_stats as azs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return azs.loo(tree, pointwise=True, var_name="items")
