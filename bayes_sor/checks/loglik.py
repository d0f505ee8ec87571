"""Pointwise (per respondent) log-likelihood of a run, and LOO through ArviZ.

Which log-likelihood a run gets (:func:`loglik_kind`):

- ``marginal``: items ~ MvNormal(mu(theta), Sigma(theta)) with the latent variables integrated
  out; exact for linear models with continuous items, whichever likelihood was sampled.
- ``marginal_is``: the marginal likelihood of a model whose items are not jointly normal
  (ordinal items, latent interactions), p(y_i | theta) = integral of p(y_i | eta) p(eta | theta)
  over the respondent's latent scores eta, by importance sampling (:func:`importance_loglik`):
  per respondent a Student-t proposal (:data:`IS_DF` degrees of freedom) centred on the mean of
  their stored latent scores (``fit --save-latent``) with their covariance across draws, the
  same :data:`IS_POINTS` scrambled Sobol points for every draw; its Monte Carlo standard error
  (delta method, per respondent and draw) is stored with the values (attributes ``mc_se_mean``,
  ``mc_se_max``).
- ``marginal_approx``: the normal approximation of the implied moments, for latent interactions
  when the latent scores were not stored (the items are not normal there).
- ``conditional``: the items given each respondent's stored scores (ordered-probit interval
  probabilities for ordinal items): a different target from the marginal one (LOO then predicts
  a respondent's answers given their own latent scores) whose Pareto k values are often high;
  computed when asked for (``pointwise_loglik(run, "conditional")``), never chosen.
- ``None``: ordinal items without stored latent scores, models with observed structural
  variables and ordinal items, covariance-matrix input.

Missing answers (NaN, ``fit --missing model``): each respondent's log-likelihood is that of the
items they answered (the marginal density of the answered sub-vector; the conditional density
of the answered cells, integrated over the scores for ``marginal_is``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.special import chdtri, gammaln, log_ndtr, logsumexp, ndtri

from bayes_sor.checks.predictive import Implied, batches, implied, ordinal_codes
from bayes_sor.data.missing import casewise_pointwise_loglik
from bayes_sor.runs.rundir import Run
from bayes_sor.spec.matrices import Representation, extend

#: draws ``marginal_is`` integrates at by default (LOO's Monte Carlo error is far below the
#: comparisons' SE with 1000; each draw costs an integral per respondent)
IS_MAX_DRAWS = 1000
KINDS = ("marginal", "marginal_is", "marginal_approx", "conditional")
LOG_2PI = np.log(2 * np.pi)
#: quasi-random points per respondent and draw of ``marginal_is`` for one latent variable,
#: doubled per doubling of the latents up to :data:`IS_MAX_POINTS` (:func:`is_points`; powers
#: of 2, as Sobol's). Against the exact values (tests/checks/test_loglik.py): one latent, 128
#: points err by at most 0.01 nats (64 by 0.03); three latents (an interaction), 128 points
#: by up to 0.07, 512 by at most 0.022
IS_POINTS = 128
IS_MAX_POINTS = 1024
#: degrees of freedom of its Student-t proposal (20: a third of the error of 5 at 128 points,
#: tails still polynomial)
IS_DF = 20
#: array cells per batch of draws of the importance sampler (bounds its memory, ~100 MB)
IS_CELLS = 4_000_000


def loglik_kind(run: Run) -> tuple[str | None, str]:
    """The kind of pointwise log-likelihood available for ``run`` and a sentence saying why."""
    if run.y is None:
        return None, "covariance-matrix input: no respondents, so no pointwise log-likelihood"
    normal = not (run.partable.ordinal_items() or run.partable.interactions)
    if normal:
        return "marginal", (
            "marginal multivariate normal log-likelihood (latent variables integrated out)"
        )
    what = "ordinal items" if run.partable.ordinal_items() else "latent interaction"
    if run.latent_scores() is not None and not run.partable.observed_structural:
        return "marginal_is", (
            f"{what}: marginal log-likelihood, the latent scores integrated out by importance "
            f"sampling ({is_points(len(run.rep.latents))} quasi-random points per respondent "
            "and draw, proposals fitted to the stored latent scores)"
        )
    if run.partable.ordinal_items():
        return None, (
            "ordinal items and no stored latent scores: no pointwise log-likelihood "
            "(refit with --save-latent for LOO)"
        )
    return "marginal_approx", (
        "latent interaction: marginal log-likelihood under the normal approximation of the "
        "implied moments (latent scores not stored; refit with --save-latent for the exact one)"
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
    """log p(y_i | eta_i, theta) summed over the answered items, for latent scores eta
    (S, N, m) of the run's respondents: (S, N), each under their own group's parameters."""
    ext = extend(draws)
    codes = answer_codes(run)
    out = np.empty((len(draws), run.n_obs))
    for rows, rep in group_rows(run):
        out[:, rows] = items_loglik(rep, run.y[rows], codes[rows], ext, eta[:, rows])
    return out


def group_rows(run: Run) -> list[tuple[np.ndarray, Representation]]:
    """Each group's respondents (a mask over the run's rows) and representation."""
    if not run.partable.groups:
        return [(np.ones(run.n_obs, bool), run.rep)]
    return [(run.labels == label, group.rep) for label, group in run.by_group()]


def answer_codes(run: Run) -> np.ndarray:
    """Each ordinal answer's category code 0..K-1 among the item's answers in the whole run
    (as ``fit`` codes them), 0 for continuous items and unanswered cells: (N, p)."""
    codes = np.zeros(run.y.shape, dtype=int)
    ordinal = [j for j, item in enumerate(run.rep.items) if item in run.rep.thresholds]
    if ordinal:
        categories = [run.categories[run.rep.items[j]] for j in ordinal]
        codes[:, ordinal] = np.nan_to_num(ordinal_codes(run.y[:, ordinal], categories)).astype(int)
    return codes


def items_loglik(
    rep: Representation, y: np.ndarray, codes: np.ndarray, ext: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    """log p(y_k | eta_k, theta) of the answered items for rows k: answers ``y`` (K, p) with
    their ``codes`` (:func:`answer_codes`), draws ``ext`` (S, n_par + 1), scores ``eta``
    (S, K, m): (S, K).

    Ordinal items contribute their ordered-probit interval probability, continuous items their
    normal density (multivariate when they have residual covariances).
    """
    lam, theta, nu = ext[:, rep.lambda_], ext[:, rep.theta], ext[:, rep.nu]
    mu = nu[:, None, :] + eta @ np.swapaxes(lam, -1, -2)
    is_ord = np.array([item in rep.thresholds for item in rep.items])
    out = np.zeros(mu.shape[:2])
    for j in np.flatnonzero(is_ord):
        tau = np.sort(ext[:, rep.thresholds[rep.items[j]]], axis=-1)
        out += _ordinal_term(tau, y[:, j], codes[:, j], mu[..., j], np.sqrt(theta[:, j, j]))
    cont = np.flatnonzero(~is_ord)
    if len(cont) and np.isnan(y[:, cont]).any():
        out += casewise_pointwise_loglik(y[:, cont], mu[..., cont], theta[:, cont][:, :, cont])
    elif len(cont):
        out += mvn_logpdf(y[None][..., cont] - mu[..., cont], theta[:, cont][:, :, cont])
    return out


def _ordinal_term(
    tau: np.ndarray, answers: np.ndarray, code: np.ndarray, mu: np.ndarray, sd: np.ndarray
) -> np.ndarray:
    """log P(observed category | mu) of one item for each draw and row (0 where the item was
    not answered), thresholds ``tau`` (S, K-1), residual SDs ``sd`` (S,): (S, K)."""
    inf = np.full((tau.shape[0], 1), np.inf)
    padded = np.concatenate([-inf, tau, inf], axis=1)
    sd = sd[:, None]
    lower, upper = (padded[:, code] - mu) / sd, (padded[:, code + 1] - mu) / sd
    return np.where(np.isnan(answers), 0.0, _log_interval(lower, upper))


def latent_logdensity(rep: Representation, ext: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """log p(eta_k | theta) of latent scores ``eta`` (S, K, m) under draws ``ext``: (S, K).

    The structural model eta = alpha + B eta + gamma (a b) + zeta, zeta ~ N(0, Psi), read
    backwards: the density of zeta(eta) times the Jacobian |det(I - B)| (the product terms
    add a triangular part with unit diagonal in causal order, so they leave it unchanged).
    """
    beta, psi = ext[:, rep.beta], ext[:, rep.psi]
    zeta = eta - eta @ np.swapaxes(beta, -1, -2)
    if rep.alpha is not None:
        zeta = zeta - ext[:, rep.alpha][:, None, :]
    for t in rep.interactions:
        gamma = ext[:, t.param][:, None]
        zeta[..., t.outcome] -= gamma * eta[..., t.first] * eta[..., t.second]
    _, logdet = np.linalg.slogdet(np.eye(len(rep.latents)) - beta)
    return mvn_logpdf(zeta, psi) + logdet[:, None]


@dataclass(frozen=True)
class Proposal:
    """Each respondent's importance-sampling points ``eta`` (N, M, m) and their log proposal
    density ``log_q`` (N, M)."""

    eta: np.ndarray
    log_q: np.ndarray


def is_points(latents: int) -> int:
    """The importance sampler's points for a model of ``latents`` latent variables."""
    return min(IS_POINTS * 2 ** int(np.ceil(np.log2(max(latents, 1)))), IS_MAX_POINTS)


def proposal(scores: np.ndarray, points: int, seed: int = 0) -> Proposal:
    """Student-t proposals fitted to stored latent scores (S, N, m): location each
    respondent's mean score, scale matrix their scores' covariance across draws.

    The t's tails are heavier than the integrand's (Gaussian in eta: p(eta | theta) times a
    bounded probability or a normal density), so the weights are bounded where a Gaussian
    proposal narrower than the prior could give them infinite variance (a respondent who chose
    every top category). The same quasi-random points serve every respondent and draw.
    """
    # scipy.stats costs ~0.6 s to import: loaded where used, not by every command
    from scipy.stats import qmc

    m = scores.shape[-1]
    mean = scores.mean(axis=0)
    dev = scores - mean
    cov = np.einsum("sni,snj->nij", dev, dev) / max(len(scores) - 1, 1)
    cov = cov + 1e-8 * np.eye(m)
    chol = np.linalg.cholesky(cov)
    u = qmc.Sobol(m + 1, scramble=True, seed=seed).random(points)
    z = ndtri(u[:, :m]) / np.sqrt(chdtri(IS_DF, 1 - u[:, m]) / IS_DF)[:, None]
    log_t = (
        gammaln((IS_DF + m) / 2)
        - gammaln(IS_DF / 2)
        - m / 2 * np.log(IS_DF * np.pi)
        - (IS_DF + m) / 2 * np.log1p((z**2).sum(axis=1) / IS_DF)
    )
    logdet = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    eta = mean[:, None, :] + z @ np.swapaxes(chol, -1, -2)
    return Proposal(eta, log_t[None, :] - logdet[:, None])


def importance_loglik(
    rep: Representation,
    y: np.ndarray,
    codes: np.ndarray,
    draws: np.ndarray,
    scores: np.ndarray,
    points: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """log p(y_i | theta_s) with the latent scores integrated out by importance sampling
    (:func:`proposal` fitted to ``scores`` (S, N, m), ``points`` per respondent and draw, by
    default :func:`is_points`), and its Monte Carlo standard error: two (S, N) arrays. ``y``
    (N, p) the answers, ``codes`` their :func:`answer_codes`.

    The error is the delta method's sd(w) / (sqrt(M) mean(w)) of the log of the weights'
    mean, conservative for quasi-random points (their error shrinks faster than 1/sqrt(M)).
    """
    prop = proposal(scores, points or is_points(scores.shape[-1]))
    n, m_points, m = prop.eta.shape
    flat = prop.eta.reshape(1, n * m_points, m)
    y_rep, codes_rep = np.repeat(y, m_points, axis=0), np.repeat(codes, m_points, axis=0)
    ext = extend(draws)
    ll, se = np.empty((len(draws), n)), np.empty((len(draws), n))
    size = max(1, IS_CELLS // (n * m_points * max(len(rep.items), m)))
    for idx in batches(len(draws), size):
        eta = np.broadcast_to(flat, (len(ext[idx]), *flat.shape[1:]))
        log_joint = items_loglik(rep, y_rep, codes_rep, ext[idx], eta) + latent_logdensity(
            rep, ext[idx], eta
        )
        log_w = log_joint.reshape(-1, n, m_points) - prop.log_q[None]
        ll[idx] = logsumexp(log_w, axis=-1) - np.log(m_points)
        w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
        se[idx] = w.std(axis=-1) / (np.sqrt(m_points) * w.mean(axis=-1))
    return ll, se


def pointwise_loglik(
    run: Run, kind: str | None = None, every: int | None = None
) -> xr.DataArray | None:
    """(chain, draw, obs) log-likelihood of each respondent, or None when unavailable; of every
    ``every``-th draw of each chain (attribute ``every``, which :func:`loglik_tree` follows).
    By default every draw, except ``marginal_is`` (an integral per respondent and draw): at
    most :data:`IS_MAX_DRAWS` draws, thinned evenly per chain.

    ``marginal_is`` values carry their Monte Carlo error as attributes ``mc_se_mean`` and
    ``mc_se_max`` (nats, over respondents and draws)."""
    kind = kind or loglik_kind(run)[0]
    if kind is None:
        return None
    if every is None:
        every = int(np.ceil(len(run.draws) / IS_MAX_DRAWS)) if kind == "marginal_is" else 1
    par = run.par[:, ::every]
    draws = par.reshape(-1, par.shape[-1])
    attrs = {"every": every}
    if kind in ("conditional", "marginal_is"):
        eta = run.latent_scores()[:, ::every].reshape(len(draws), run.n_obs, -1)
    if kind == "conditional":
        ll = np.concatenate(
            [conditional_loglik(run, draws[i], eta[i]) for i in batches(draws.shape[0], 50)]
        )
    elif kind == "marginal_is":
        ll, se = _importance_by_group(run, draws, eta)
        attrs |= {"mc_se_mean": float(se.mean()), "mc_se_max": float(se.max())}
    else:
        ll = _marginal_by_group(run, draws)
    return xr.DataArray(
        ll.reshape(*par.shape[:2], run.n_obs),
        dims=("chain", "draw", "obs"),
        name="items",
        attrs=attrs,
    )


def _importance_by_group(
    run: Run, draws: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`importance_loglik` of each group's respondents under their group's parameters,
    the proposals fitted to their ``scores`` (S, N, m)."""
    codes = answer_codes(run)
    ll, se = np.empty((len(draws), run.n_obs)), np.empty((len(draws), run.n_obs))
    for rows, rep in group_rows(run):
        ll[:, rows], se[:, rows] = importance_loglik(
            rep, run.y[rows], codes[rows], draws, scores[:, rows]
        )
    return ll, se


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
    """A DataTree with ``posterior`` and ``log_likelihood`` groups, as ArviZ's LOO expects;
    the run's draws thinned as ``ll``'s (its attribute ``every``) unless ``posterior`` is given."""
    if posterior is None:
        every = ll.attrs.get("every", 1)
        posterior = run.posterior[["par"]].isel(draw=slice(None, None, every))
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
