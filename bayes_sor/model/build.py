"""Parameter table + data -> PyMC model.

One small function per piece, as bambi does: :func:`parameter_vector` turns the free parameters
and their priors into the full parameter vector ``par`` (one entry per table row, stored in the
posterior as ``par`` with dim ``param``); :func:`marginal_likelihood` and
:func:`conditional_likelihood` add the data. Every later stage reads ``par`` through the
:mod:`bayes_sor.spec.matrices` indices, so both likelihoods produce the same posterior names.

Data may be raw answers (a DataFrame), a covariance matrix with N
(:class:`~bayes_sor.data.summary_statistics.SummaryData`, marginal likelihood only) or ``None``
(the prior alone, for prior draws).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.data.categories import answer_codes
from bayes_sor.data.missing import LOG_2PI, Patterns, PatternStatistics, psd_root, unanswered_blocks
from bayes_sor.data.summary_statistics import SummaryData
from bayes_sor.errors import DataError, ModelSpecError
from bayes_sor.model import parameterisation
from bayes_sor.model.ordinal import (
    GroupedOrdered,
    ordinal_logp,
    padded_thresholds,
    start_thresholds,
    threshold_layout,
)
from bayes_sor.model.prior_families import DISTRIBUTIONS, group_rv
from bayes_sor.spec.matrices import Representation, path_depth, representation
from bayes_sor.spec.partable import ParTable
from bayes_sor.spec.prior_text import ARGUMENTS, POSITIVE, Prior, parse_prior

LIKELIHOODS = ("auto", "marginal", "conditional")
#: the centred latent-score variables: the exogenous block, and one per endogenous latent
CENTRED_EXOGENOUS, CENTRED_PREFIX = "latent_exogenous", "latent_eta_"
Data = pd.DataFrame | SummaryData | None


def marginal_reason(partable: ParTable) -> str:
    """Why the marginal likelihood cannot be used for this model ('' when it can)."""
    if partable.interactions:
        return "the model has a latent interaction, whose likelihood has no closed form"
    if partable.ordinal_items():
        return "the model has ordinal items, whose likelihood is not multivariate normal"
    return ""


def choose_likelihood(partable: ParTable, likelihood: str = "auto",
                      summary: bool = False) -> str:
    """Resolve ``auto``: marginal whenever it is valid, conditional otherwise.

    ``summary``: the data are a covariance matrix, which only the marginal likelihood can use.
    """
    if likelihood not in LIKELIHOODS:
        raise ModelSpecError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}")
    reason = marginal_reason(partable)
    if likelihood == "marginal" and reason:
        raise ModelSpecError(
            f"the marginal likelihood cannot be used: {reason}; use --likelihood conditional "
            "(or auto)"
        )
    if summary and (reason or likelihood == "conditional"):
        raise ModelSpecError(
            "a covariance matrix can only be analysed with the marginal likelihood"
            + (f", but {reason}" if reason else "")
            + "; give the raw answers (--data) instead"
        )
    if likelihood == "auto":
        return "conditional" if reason else "marginal"
    return likelihood


def _free_rows(partable: ParTable) -> pd.DataFrame:
    """One row per free parameter (the first table row carrying each free index)."""
    params = partable.parameters.reset_index(drop=True)
    params["pos"] = np.arange(len(params))
    return params[params.free > 0].drop_duplicates("free").set_index("free", drop=False)


def threshold_vector(partable: ParTable, centred: bool = False
                     ) -> tuple[pt.TensorVariable, list[int]]:
    """All thresholds as one ``thresholds`` random variable, increasing within each item.

    Returns the variable and the free-parameter numbers of its elements. Each threshold keeps
    its own normal prior; the grouped ordered transform makes them increase within an item.
    ``centred``: the flat, ordered ``thresholds_centred`` instead, whose priors
    :func:`_uncentre` adds once they are shifted back.
    """
    params = partable.parameters.reset_index(drop=True)
    rows = params[params.op == "|"]
    if (rows.free == 0).any() or rows.free.duplicated().any():
        raise ModelSpecError(
            "fixed thresholds and thresholds shared by a label are not supported; leave the "
            "thresholds free (each item gets its own)"
        )
    items = partable.ordinal_items()
    rows = rows.assign(item=rows.lhs.map(items.index), k=rows.rhs.str[1:].astype(int))
    rows = rows.sort_values(["item", "k"])
    priors = [parse_prior(p, f"the threshold '{r.lhs} | {r.rhs}'")
              for p, r in zip(rows.prior, rows.itertuples(), strict=True)]
    if any(p.family != "normal" or p.on_sd for p in priors):
        raise ModelSpecError("thresholds need normal priors, e.g. 'normal(0,1.5)'")
    first = (rows.lhs != rows.lhs.shift()).to_numpy()
    names = [partable.names[i] for i in rows.index]
    _coord("thresholds_dim", names)
    args = np.array([p.args for p in priors])
    # An ordered initval: the default (every prior mean, 0) is not strictly increasing, and
    # the transform's log(t_k - t_{k-1}) would start at -inf.
    rank = np.arange(len(rows)) - np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
    ordered = {"dims": "thresholds_dim", "transform": GroupedOrdered(first),
               "initval": 0.5 * rank - 0.5}
    rv = (pm.Flat("thresholds_centred", **ordered) if centred
          else pm.Normal("thresholds", mu=args[:, 0], sigma=args[:, 1], **ordered))
    return rv, rows.free.tolist()


def centred_locations(partable: ParTable) -> list[int]:
    """Free ids of the intercepts and thresholds that the conditional model samples centred on
    the latent scores' mean (:func:`_uncentre`)."""
    free = _free_rows(partable)
    ordinal = set(partable.ordinal_items()) | set(partable.observed_structural)
    counts = partable.parameters.free.value_counts()
    rows = free[(free.op == "~1") & ~free.lhs.isin(ordinal) & ~free.prior.str.endswith("[sd]")]
    return [f for f in rows.index if counts.get(f, 0) == 1] + free.index[free.op == "|"].tolist()


def parameter_vector(partable: ParTable, rep: Representation,
                     centred: list[int] | None = None) -> pt.TensorVariable:
    """Free parameters with their priors -> the full parameter vector (named ``par`` by
    :func:`pymc_model` once the centred intercepts, if any, are shifted back).

    Free parameters sharing a prior family form one vector random variable named
    ``<family>_params`` (``[sd]`` priors: ``<family>_sd_params``), so the graph stays small.
    Covariances are built from correlations: an LKJ matrix for the exogenous latents,
    ``beta`` priors on (rho + 1) / 2 for residual covariances. Thresholds form one ordered
    vector ``thresholds``. ``centred``: free ids of intercepts sampled as the flat
    ``intercept_centred_params`` and of thresholds sampled as ``thresholds_centred``
    (:func:`_uncentre`).
    """
    params = partable.parameters.reset_index(drop=True)
    free = _free_rows(partable)
    exo = partable.exogenous
    exo_cov = free[free.prior.str.startswith("lkj")]
    res_cov = free[(free.lhs != free.rhs) & (free.op == "~~") & ~free.index.isin(exo_cov.index)]
    thresholds = free[free.op == "|"]
    ordinary = free.drop(exo_cov.index).drop(res_cov.index).drop(thresholds.index)
    centred = centred or []
    intercepts = [f for f in centred if f not in thresholds.index]
    ordinary = ordinary.drop(intercepts)

    # One vector per prior group, gathered into ``par`` by index arrays: per-parameter scalar
    # nodes made graphs of ~1000 nodes whose rewriting dominated compilation (Study A: 16.8 s of
    # PyTensor rewrites).
    groups: list[tuple[list[int], pt.TensorVariable]] = []
    for (family, on_sd), members in _prior_groups(ordinary).items():
        name = f"{family}{'_sd' if on_sd else ''}_params"
        args = np.array([p.args for p in members.values()])
        dim = f"{name}_dim"
        pm.modelcontext(None).add_coord(dim, [partable.names[free.loc[f, "pos"]] for f in members])
        rv = group_rv(name, family, args, dim)
        # a product, not rv**2: two compilations of the same graph (compile-once SBC, fresh
        # fit) evaluated the vectorised power an ulp apart; a product rounds the same way
        groups.append((list(members), rv * rv if on_sd else rv))
    if intercepts:
        dim = "intercept_centred_params_dim"
        pm.modelcontext(None).add_coord(dim, [partable.names[free.loc[f, "pos"]]
                                              for f in intercepts])
        groups.append((intercepts, pm.Flat("intercept_centred_params", dims=dim)))
    if len(thresholds):
        rv, numbers = threshold_vector(partable, centred=bool(set(centred) & set(thresholds.index)))
        groups.append((numbers, rv))

    stage = pt.as_tensor_variable(params.value.fillna(0.0).to_numpy(dtype=float))
    if groups:
        stage = _place(stage, params, [f for ids, _ in groups for f in ids],
                       pt.concatenate([values for _, values in groups]))

    cov_rows, correlations = [], []
    if len(exo_cov):
        etas = {parse_prior(p).args[0] for p in exo_cov.prior}
        if len(etas) > 1:
            raise ModelSpecError("all exogenous latent correlations must share one lkj() prior")
        if len(exo_cov) != len(exo) * (len(exo) - 1) // 2:
            raise ModelSpecError(
                "the exogenous latents' correlations must all be free (an LKJ prior covers the "
                "whole matrix); to fix one, regress instead or use residual covariances"
            )
        chol = pm.LKJCorr("latent_cor_chol", n=len(exo), eta=etas.pop())
        pos = {f: i for i, f in enumerate(exo)}
        cov_rows.append(exo_cov)
        correlations.append((chol @ chol.T)[exo_cov.lhs.map(pos).to_numpy(),
                                            exo_cov.rhs.map(pos).to_numpy()])
    if len(res_cov):
        args = np.array([parse_prior(p, "a residual covariance").args for p in res_cov.prior])
        raw = pm.Beta("residual_cor_raw", alpha=args[:, 0], beta=args[:, 1],
                      shape=len(res_cov))
        cov_rows.append(res_cov)
        correlations.append(2 * raw - 1)
    if cov_rows:
        rows = pd.concat(cov_rows)
        variance = {
            v: int(np.flatnonzero((params.op == "~~") & (params.lhs == v) & (params.rhs == v))[0])
            for v in rep.items + rep.latents
        }
        scale = pt.sqrt(stage[rows.lhs.map(variance).to_numpy()]
                        * stage[rows.rhs.map(variance).to_numpy()])
        stage = _place(stage, params, rows.index.tolist(), pt.concatenate(correlations) * scale)
    return stage


def _place(stage: pt.TensorVariable, params: pd.DataFrame, ids: list[int],
           values: pt.TensorVariable) -> pt.TensorVariable:
    """``stage`` with every row whose free id is ``ids[k]`` set to ``values[k]`` (a label shared
    by several rows, an equality constraint, fills them all)."""
    where = {f: k for k, f in enumerate(ids)}
    free = params.free.to_numpy()
    rows = np.flatnonzero(np.isin(free, ids))
    return pt.set_subtensor(stage[rows], values[np.array([where[f] for f in free[rows]])])


def _named(par: pt.TensorVariable) -> pt.TensorVariable:
    return pm.Deterministic("par", par, dims="param")


def _matrices(par: pt.TensorVariable, rep: Representation) -> dict[str, pt.TensorVariable]:
    ext = pt.concatenate([par, pt.zeros(1)])
    return {
        "lambda": ext[rep.lambda_],
        "beta": ext[rep.beta],
        "psi": ext[rep.psi],
        "theta": ext[rep.theta],
        "nu": ext[rep.nu],
    }


def sufficient_statistics(y: np.ndarray) -> dict[str, np.ndarray]:
    """N, mean and the Cholesky factor of the (biased) sample covariance of complete data."""
    n = y.shape[0]
    mean = y.mean(axis=0)
    cov = (y - mean).T @ (y - mean) / n
    return {"n": np.array(n, dtype=float), "mean": mean, "cov_chol": np.linalg.cholesky(cov)}


def marginal_likelihood(par: pt.TensorVariable, rep: Representation, stats: dict) -> None:
    """Items ~ MvNormal(nu, Sigma(theta)) from sufficient statistics (cost independent of N).

    logL = -N/2 [log|Sigma| + tr(Sigma^-1 S) + (ybar - nu)' Sigma^-1 (ybar - nu) + p log 2 pi],
    evaluated through the Cholesky factor of Sigma: no explicit inverse. Without ``mean`` in
    ``stats`` (a covariance matrix as data) the mean term is absent and ``n`` is N - 1 with the
    unbiased S: the Wishart likelihood of S.
    """
    mats = _matrices(par, rep)
    chol = pt.linalg.cholesky(_implied_cov(mats, rep))
    n = pm.Data("n_obs", stats["n"])
    cov_chol = pm.Data("item_cov_chol", stats["cov_chol"], dims=("item", "item_"))
    scatter = cov_chol
    if stats.get("mean") is not None:
        mean = pm.Data("item_mean", stats["mean"], dims="item")
        scatter = pt.concatenate([cov_chol, (mean - mats["nu"])[:, None]], axis=1)
    # tr(Sigma^-1 S) + quad = ||L^-1 [chol(S), ybar - nu]||^2: one triangular solve for both
    mahalanobis = pt.sum(pt.linalg.solve_triangular(chol, scatter, lower=True) ** 2)
    p = len(rep.items)
    pm.Potential("loglik", -0.5 * n * (_log_diagonal(chol) + mahalanobis + p * np.log(2 * np.pi)))


def _implied_cov(mats: dict, rep: Representation) -> pt.TensorVariable:
    """Sigma = Lambda (I - B)^-1 Psi (I - B)^-T Lambda' + Theta.

    The structural model is recursive (the parameter table refuses cycles), so B is nilpotent
    and (I - B)^-1 = I + B + ... + B^d, d the longest path: a few small products in Horner
    form instead of an LU factorisation (whose LAPACK call, and its gradient's, numba links
    anew in every process), and for a CFA (d = 0) nothing at all.
    """
    latent_cov = mats["psi"]
    if depth := path_depth(rep):
        eye = pt.eye(len(rep.latents))
        total = eye
        for _ in range(depth):
            total = eye + mats["beta"] @ total
        latent_cov = total @ latent_cov @ total.T
    return mats["lambda"] @ latent_cov @ mats["lambda"].T + mats["theta"]


def _padded_cholesky(sigma: pt.TensorVariable, patterns: Patterns) -> pt.TensorVariable:
    """Cholesky factor of Sigma per missingness pattern (K, p, p), one batched factorisation:
    the answered block, and the identity on unanswered items, which leaves the log-determinant
    and the solves against the answered items (zero elsewhere) unchanged. (For residual
    covariances given the latent scores; the marginal Sigma uses the precision identities of
    :func:`casewise_likelihood`.)"""
    eye = np.eye(patterns.mask.shape[1])
    return pt.linalg.cholesky(pt.where(patterns.pairs, sigma[None], eye))


def _log_diagonal(chol: pt.TensorVariable) -> pt.TensorVariable:
    """log|Sigma| per matrix of a batch of Cholesky factors."""
    return 2 * pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def casewise_likelihood(par: pt.TensorVariable, rep: Representation,
                        stats: PatternStatistics) -> None:
    """The marginal likelihood of incomplete answers (FIML): per missingness pattern, the
    answered items ~ MvNormal(nu_o, Sigma_oo), from the pattern's n, mean and scatter.

    logL = -1/2 sum_k n_k [log|Sigma_oo| + tr(Sigma_oo^-1 S_k) + d_k' Sigma_oo^-1 d_k
    + p_k log 2 pi]; the cost grows with the number of patterns, not with N. As in
    :func:`bayes_sor.data.missing.casewise_loglik`, through the precision matrix P = Sigma^-1 (one
    p x p factorisation): with m a pattern's unanswered items, Sigma_oo^-1 = P_oo - P_om
    P_mm^-1 P_mo and log|Sigma_oo| = log|Sigma| + log|P_mm|, so per pattern only the small
    block P_mm is factorised, batched over the patterns with as many unanswered items (measured
    5x faster per gradient than factorising each Sigma_oo on 20 items with 15 % missing).
    """
    mats = _matrices(par, rep)
    patterns = stats.patterns
    k = len(patterns.mask)
    chol = pt.linalg.cholesky(_implied_cov(mats, rep))
    precision = pt.linalg.cho_solve((chol, True), pt.eye(len(rep.items)))
    _coord("pattern", list(range(k)))
    n = pm.Data("pattern_n", patterns.n, dims="pattern")
    mean = pm.Data("pattern_mean", stats.mean, dims=("pattern", "item"))
    diff = pt.where(patterns.mask, mean - mats["nu"], 0.0)
    solved = diff @ precision
    quad = pt.sum(solved * diff, axis=-1)
    logdet = pt.zeros(k) + _log_diagonal(chol)
    # the scatter term only for patterns of two or more respondents (a single one's is 0)
    spread = patterns.n > 1
    trace = pt.zeros(k)
    if spread.any():
        _coord("spread_pattern", np.flatnonzero(spread).tolist())
        scatter = pm.Data("pattern_scatter", stats.scatter[spread],
                          dims=("spread_pattern", "item", "item_"))
        trace = pt.set_subtensor(trace[spread], pt.sum(precision * scatter, axis=(-2, -1)))
    root = psd_root(stats.scatter)
    solve = pt.linalg.solve_triangular
    for rows, missing in unanswered_blocks(patterns):
        block = pt.linalg.cholesky(precision[missing[:, :, None], missing[:, None, :]])
        w = solve(block, solved[rows[:, None], missing][..., None], lower=True)
        quad = pt.inc_subtensor(quad[rows], -pt.sum(w**2, axis=(-2, -1)))
        logdet = pt.inc_subtensor(logdet[rows], _log_diagonal(block))
        wide = spread[rows]
        if wide.any():
            z = solve(block[wide], precision[missing[wide]] @ root[rows[wide]], lower=True)
            trace = pt.inc_subtensor(trace[rows[wide]], -pt.sum(z**2, axis=(-2, -1)))
    answered = patterns.mask.sum(axis=1)
    pm.Potential("loglik", -0.5 * pt.sum(n * (logdet + quad + trace + answered * LOG_2PI)))


def _coord(name: str, labels: list[str]) -> str:
    """Register a coordinate in the current model; returns its name (for ``dims``)."""
    pm.modelcontext(None).add_coord(name, labels)
    return name


def _dim(name: str, labels: list[str], everything: list[str], full: str) -> str:
    """The dim for a block of variables: ``full`` when it is all of them, else its own."""
    return full if labels == everything else _coord(name, labels)


@dataclass
class _ObservedBlock:
    """Observed structural variables: their data (constant) and intercepts (parameters)."""

    names: list[str]
    data: pt.TensorVariable
    nu: pt.TensorVariable

    def take(self, names: list[str]) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """(data, intercepts) of some of the variables."""
        idx = [self.names.index(v) for v in names]
        return self.data[:, idx], self.nu[idx]

    def centred(self, name: str) -> pt.TensorVariable:
        """The variable's score in the structural model: data minus intercept."""
        k = self.names.index(name)
        return self.data[:, k] - self.nu[k]


def _observed_block(mats: dict, rep: Representation, partable: ParTable,
                    y: np.ndarray) -> _ObservedBlock | None:
    names = partable.observed_structural
    if not names:
        return None
    idx = [rep.items.index(v) for v in names]
    incomplete = [v for v, k in zip(names, idx, strict=True) if np.isnan(y[:, k]).any()]
    if incomplete:
        raise DataError(
            f"the observed variable(s) {incomplete} have missing values, which the conditional "
            "likelihood cannot model (they enter the structural model as data); use --missing "
            "listwise, or the marginal likelihood if the model has no latent interaction"
        )
    data = pm.Data("y_observed", y[:, idx], dims=("obs", _coord("observed_variable", names)))
    return _ObservedBlock(names, data, mats["nu"][idx])


def latent_scores(par: pt.TensorVariable, rep: Representation, partable: ParTable,
                  y: np.ndarray, centred: Sequence[str] = ()) -> pt.TensorVariable:
    """Latent scores (obs x latent), built in causal order.

    The latents in ``centred`` have their scores sampled themselves (exogenous ones as the
    MvNormal ``latent_exogenous``, an endogenous one ``f`` as the Normal ``latent_eta_f``
    around its linear predictor); the others are non-centred, standard normal deviates
    ``latent_z`` scaled by the Cholesky factor of the exogenous covariance or by the
    disturbance SD (:mod:`bayes_sor.model.parameterisation` says which, and why). Latent products
    enter the predictors of interactions. Observed structural variables
    (:attr:`~bayes_sor.spec.partable.ParTable.observed_structural`) enter as data, ``y - nu``, with
    their structural equations as likelihood terms (as indicators their residual variance is
    0, which a Normal cannot carry).
    """
    mats = _matrices(par, rep)
    pos = {f: i for i, f in enumerate(rep.latents)}
    block = _observed_block(mats, rep, partable, y)
    observed = block.names if block else []
    deviates = [f for f in rep.latents if f not in observed and f not in centred]
    z_dim = _dim("noncentred_latent", deviates, rep.latents, "latent")
    z = pm.Normal("latent_z", 0.0, 1.0, dims=("obs", z_dim)) if deviates else None
    z_of = {f: z[:, k] for k, f in enumerate(deviates)}
    columns = _exogenous_scores(mats, pos, partable, block, z_of, centred)
    outcomes: dict[str, pt.TensorVariable] = {}
    ext = pt.concatenate([par, pt.zeros(1)])
    for f in partable.order:
        i = pos[f]
        if i in columns:
            continue
        mean = pt.zeros(y.shape[0])
        for j in columns:
            if rep.beta[i, j] != rep.zero:
                mean = mean + mats["beta"][i, j] * columns[j]
        for t in rep.interactions:
            if t.outcome == i:
                mean = mean + ext[t.param] * columns[t.first] * columns[t.second]
        if f in observed:
            outcomes[f] = mean
            columns[i] = block.centred(f)
        elif f in centred:
            columns[i] = pm.Normal(f"{CENTRED_PREFIX}{f}", mean, pt.sqrt(mats["psi"][i, i]),
                                   dims="obs")
        else:
            columns[i] = mean + pt.sqrt(mats["psi"][i, i]) * z_of[f]
    if outcomes:
        names = list(outcomes)
        data, nu = block.take(names)
        idx = [pos[f] for f in names]
        pm.Normal("observed_outcomes", mu=nu + pt.stack(list(outcomes.values()), axis=1),
                  sigma=pt.sqrt(mats["psi"][idx, idx]), observed=data,
                  dims=("obs", _coord("observed_outcome", names)))
    return pt.stack([columns[i] for i in range(len(rep.latents))], axis=1)


def _exogenous_scores(mats: dict, pos: dict[str, int], partable: ParTable,
                      block: _ObservedBlock | None, z_of: dict[str, pt.TensorVariable],
                      centred: Sequence[str]) -> dict[int, pt.TensorVariable]:
    """Exogenous scores, in three blocks: observed variables O, centred latents C, non-centred
    latents N. Psi is ordered (O, C, N) and factored L L'; each block is drawn given the
    standardised scores of the blocks before it: the data of O are MvNormal(nu_O, L_OO L_OO'),
    ``latent_exogenous`` (C) is MvNormal(L_CO z_O, L_CC L_CC'), and eta_N = L_NO z_O + L_NC z_C
    + L_NN z_N, with z_B = L_BB^-1 (scores_B - mean_B)."""
    observed = block.names if block else []
    exo_obs = [f for f in partable.exogenous if f in observed]
    exo_centred = [f for f in partable.exogenous if f in centred]
    exo_lat = [f for f in partable.exogenous if f not in observed and f not in centred]
    idx = [pos[f] for f in exo_obs + exo_centred + exo_lat]
    if not idx:
        return {}
    chol = pt.linalg.cholesky(mats["psi"][np.ix_(idx, idx)])
    columns: dict[int, pt.TensorVariable] = {pos[f]: block.centred(f) for f in exo_obs}
    standardised: list[pt.TensorVariable] = []  # z of the blocks drawn so far, in order

    def given(lo: int, hi: int) -> pt.TensorVariable:
        """The mean of rows lo:hi of the factor given the blocks before them (lo > 0)."""
        return pt.concatenate(standardised, axis=1) @ chol[lo:hi, :lo].T

    def standardise(lo: int, hi: int, scores, mean) -> None:
        if hi < len(idx):  # a later block is drawn given these
            standardised.append(pt.linalg.solve_triangular(
                chol[lo:hi, lo:hi], (scores - mean).T, lower=True).T)

    k = len(exo_obs)
    if exo_obs:
        data, nu = block.take(exo_obs)
        pm.MvNormal("exogenous_observed", mu=nu, chol=chol[:k, :k], observed=data,
                    dims=("obs", _coord("observed_exogenous", exo_obs)))
        standardise(0, k, data, nu)
    if exo_centred:
        hi = k + len(exo_centred)
        mean = given(k, hi) if k else pt.zeros(len(exo_centred))
        scores = pm.MvNormal(CENTRED_EXOGENOUS, mu=mean, chol=chol[k:hi, k:hi],
                             dims=("obs", _coord("centred_exogenous", exo_centred)))
        columns.update({pos[f]: scores[:, j] for j, f in enumerate(exo_centred)})
        standardise(k, hi, scores, mean)
        k = hi
    if exo_lat:
        scores = pt.stack([z_of[f] for f in exo_lat], axis=1) @ chol[k:, k:].T
        if k:
            scores = scores + given(k, len(idx))
        columns.update({pos[f]: scores[:, j] for j, f in enumerate(exo_lat)})
    return columns


def raw_latent_names(model: pm.Model) -> list[str]:
    """The sampler's latent-score variables (``latent_z`` and the centred ones): what a run
    folder leaves out unless latent scores are asked for."""
    return [rv.name for rv in model.free_RVs if rv.name in ("latent_z", CENTRED_EXOGENOUS)
            or rv.name.startswith(CENTRED_PREFIX)]


def _item_blocks(rep: Representation, partable: ParTable) -> tuple[list[int], list[int]]:
    """Positions of the continuous and of the ordinal measurement items."""
    ordinal = set(partable.ordinal_items())
    observed = set(partable.observed_structural)
    continuous = [k for k, i in enumerate(rep.items) if i not in ordinal | observed]
    ordinal_pos = [k for k, i in enumerate(rep.items) if i in ordinal]
    off_diagonal = (rep.theta != rep.zero) & ~np.eye(len(rep.items), dtype=bool)
    touched = {rep.items[k] for k in np.flatnonzero(off_diagonal.any(axis=0))}
    unsupported = sorted(touched & (ordinal | observed))
    if unsupported:
        raise ModelSpecError(
            f"residual covariances of ordinal items or observed structural variables "
            f"({unsupported}) are not supported: remove them"
        )
    return continuous, ordinal_pos


def conditional_likelihood(par: pt.TensorVariable, rep: Representation, partable: ParTable,
                           y: np.ndarray, save_latent: bool = False,
                           centred: list[int] | None = None,
                           centred_latents: Sequence[str] = ()) -> None:
    """Items given sampled latent scores eta: continuous items Normal(nu + eta Lambda', theta),
    ordinal items ordered probit (:mod:`bayes_sor.data.categories`). ``centred``: free ids of the
    intercepts and thresholds sampled centred (:func:`_uncentre`); ``centred_latents``:
    latents whose scores are sampled centred (:func:`latent_scores`)."""
    psi = partable.table[(partable.table.op == "~~") & (partable.table.lhs != partable.table.rhs)]
    endo_cov = psi[psi.lhs.isin(partable.endogenous) | psi.rhs.isin(partable.endogenous)]
    if len(endo_cov):
        pairs = ", ".join(endo_cov.lhs + " ~~ " + endo_cov.rhs)
        raise ModelSpecError(
            f"residual covariances between endogenous latents ({pairs}) are only supported by "
            "the marginal likelihood; remove them or drop the latent interaction"
        )
    continuous, ordinal_pos = _item_blocks(rep, partable)
    eta = latent_scores(par, rep, partable, y, centred_latents)
    par = _named(_uncentre(par, rep, partable, eta, centred or []))
    mats = _matrices(par, rep)
    if continuous:
        _continuous_items(mats, rep, eta, y, continuous)
    if ordinal_pos:
        _ordinal_items(par, mats, rep, partable, eta, y, ordinal_pos)
    if save_latent:
        pm.Deterministic("latent_scores", eta, dims=("obs", "latent"))
    _moderator_quantiles(eta, rep, partable)


def _uncentre(par: pt.TensorVariable, rep: Representation, partable: ParTable,
              eta: pt.TensorVariable, centred: list[int]) -> pt.TensorVariable:
    """Intercepts and thresholds from their centred versions: nu_j = m_j - lambda_j' mean(eta),
    t_jk = s_jk + lambda_j' mean(eta).

    NUTS samples m_j (flat) instead of nu_j, and s_jk (flat, ordered) instead of t_jk, with
    their priors as Potentials (the maps are shifts, Jacobian 1, so the posterior is
    unchanged). The likelihood then reads m_j + lambda_j' (eta_i - mean(eta)), and
    s_jk - lambda_j' (eta_i - mean(eta)) for thresholds: they no longer move with the sample
    mean of the latent scores, which made the intercepts the slowest-mixing parameters of the
    S-O-R models, and each ordinal item's anchor threshold those of its ordinal fit (Study A,
    4 x 1000 draws: min ESS 467 at the CT items' anchors, R-hat 1.011, before centring).
    """
    if not centred:
        return par
    params = partable.parameters.reset_index(drop=True)
    free = _free_rows(partable)
    positions = np.array([int(free.loc[f, "pos"]) for f in centred])
    items = [rep.items.index(params.lhs[p]) for p in positions]
    lam = _matrices(par, rep)["lambda"][items]
    sign = np.where(params.op[positions] == "|", 1.0, -1.0)
    located = par[positions] + sign * (lam @ eta.mean(axis=0))
    for (family, _), members in _prior_groups(free.loc[centred]).items():
        args = np.array([p.args for p in members.values()])
        dist, names = DISTRIBUTIONS[family], ARGUMENTS[family]
        which = [centred.index(f) for f in members]
        prior = dist.dist(**{n: args[:, i] for i, n in enumerate(names)})
        pm.Potential(f"centred_prior_{family}", pm.logp(prior, located[which]).sum())
    return pt.set_subtensor(par[positions], located)


def _prior_groups(rows: pd.DataFrame) -> dict[tuple[str, bool], dict[int, Prior]]:
    """Free parameters by (prior family, on the SD scale): one random variable per group."""
    groups: dict[tuple[str, bool], dict[int, Prior]] = defaultdict(dict)
    for f, r in rows.iterrows():
        prior = parse_prior(r.prior, f"'{r.lhs} {r.op} {r.rhs}'")
        if r.op == "~~" and prior.family not in POSITIVE:
            raise ModelSpecError(
                f"the variance '{r.lhs} ~~ {r.rhs}' needs a positive prior (e.g. "
                f"gamma(1,0.5)[sd]); {r.prior!r} is not"
            )
        groups[(prior.family, prior.on_sd)][f] = prior
    return groups


def _continuous_items(mats: dict, rep: Representation, eta: pt.TensorVariable, y: np.ndarray,
                      block: list[int]) -> None:
    names = [rep.items[k] for k in block]
    dim = _dim("continuous_item", names, rep.items, "item")
    mu = mats["nu"][block] + eta @ mats["lambda"][block].T
    theta = mats["theta"][np.ix_(block, block)]
    correlated = np.any((rep.theta[np.ix_(block, block)] != rep.zero)
                        & ~np.eye(len(block), dtype=bool))
    if np.isnan(y[:, block]).any():
        _masked_items(mu, theta, y[:, block], correlated, dim)
        return
    data = pm.Data("y", y[:, block], dims=("obs", dim))
    if correlated:
        pm.MvNormal("items", mu=mu, chol=pt.linalg.cholesky(theta), observed=data,
                    dims=("obs", dim))
    else:
        pm.Normal("items", mu=mu, sigma=pt.sqrt(pt.diag(theta)), observed=data,
                  dims=("obs", dim))


def _masked_items(mu: pt.TensorVariable, theta: pt.TensorVariable, answers: np.ndarray,
                  correlated: bool, dim: str) -> None:
    """Continuous items with missing answers: only the answered cells enter the likelihood
    (no imputed values are sampled). Uncorrelated residuals: one Normal over the answered
    cells; correlated ones: per respondent, MvNormal of the answered items, with Theta's
    Cholesky factor per missingness pattern."""
    answered = ~np.isnan(answers)
    if not correlated:
        rows, cols = np.nonzero(answered)
        dim = _coord("answered_cell", list(range(len(rows))))
        data = pm.Data("y", answers[rows, cols], dims=dim)
        pm.Normal("items", mu=mu[rows, cols], sigma=pt.sqrt(pt.diag(theta))[cols],
                  observed=data, dims=dim)
        return
    patterns = Patterns.of(answers)
    chol = _padded_cholesky(theta, patterns)[patterns.index]
    data = pm.Data("y", np.where(answered, answers, 0.0), dims=("obs", dim))
    resid = pt.where(answered, data - mu, 0.0)
    z = pt.linalg.solve_triangular(chol, resid[..., None], lower=True)
    logp = pt.sum(z**2, axis=(-2, -1)) + _log_diagonal(chol) + answered.sum(axis=1) * LOG_2PI
    pm.Potential("items_loglik", -0.5 * pt.sum(logp))


def _ordinal_items(par: pt.TensorVariable, mats: dict, rep: Representation, partable: ParTable,
                   eta: pt.TensorVariable, y: np.ndarray, block: list[int]) -> None:
    """Ordered probit per answer: only the interval of the observed category is evaluated."""
    names = [rep.items[k] for k in block]
    positions, offsets = threshold_layout(partable, names)
    codes = np.column_stack([answer_codes(y[:, k], name, partable)
                             for k, name in zip(block, names, strict=True)])
    dim = _dim("ordinal_item", names, rep.items, "item")
    answered = ~np.isnan(y[:, block])
    codes = np.where(answered, codes, 0)  # a valid placeholder; unanswered cells are left out
    data = pm.Data("y_ordinal", codes, dims=("obs", dim))
    mu = mats["nu"][block] + eta @ mats["lambda"][block].T
    sigma = pt.sqrt(pt.diag(mats["theta"])[block])
    tau = padded_thresholds(par, positions)
    logp = ordinal_logp(data, mu, sigma, tau, offsets)
    # A Potential, not a CustomDist: the padded thresholds of all items form one vector that
    # CustomDist would try to broadcast against the answers.
    pm.Potential("ordinal_loglik", logp.sum() if answered.all()
                 else logp[np.nonzero(answered)].sum())


def _moderator_quantiles(eta: pt.TensorVariable, rep: Representation,
                         partable: ParTable) -> None:
    """16th/50th/84th percentiles of each moderator's latent scores, per draw."""
    if not partable.moderators:
        return
    n = eta.shape[0]
    pos = [rep.latents.index(w) for w in partable.moderators]
    ranked = pt.sort(eta[:, pos], axis=0)
    rows = [pt.cast(pt.floor(q * (n - 1)), "int64") for q in (0.16, 0.50, 0.84)]
    pm.Deterministic("moderator_quantiles", pt.stack([ranked[r] for r in rows], axis=1),
                     dims=("moderator", "quantile"))


@dataclass
class BuiltModel:
    """A PyMC model with what sampling and later stages need to know about it."""

    model: pm.Model
    likelihood: str
    representation: Representation
    initial_values: dict[str, np.ndarray]
    #: latents whose scores the conditional likelihood samples centred (the rest non-centred)
    centred_latents: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ItemMoments:
    """Item means, variances, (ordinal items) category codes and standardised answers
    (obs x item, raw data only), for starting values."""

    mean: dict[str, float]
    var: dict[str, float]
    codes: dict[str, np.ndarray]
    standardized: pd.DataFrame | None = None

    @classmethod
    def of(cls, partable: ParTable, data: Data) -> ItemMoments:
        items = partable.indicators
        if isinstance(data, SummaryData):
            var = np.diag(data.cov.to_numpy())
            return cls(dict.fromkeys(items, 0.0), dict(zip(items, var, strict=True)), {})
        if data is None:
            return cls(dict.fromkeys(items, 0.0), dict.fromkeys(items, 1.0), {})
        y = data[items].to_numpy(dtype=float)
        codes = {i: answer_codes(data[i].dropna(), i, partable)
                 for i in partable.ordinal_items()}
        # over the answered cells: missing answers (NaN) stay missing in the scores
        mean, var = np.nanmean(y, axis=0), np.nanvar(y, axis=0) + 1e-6
        z = pd.DataFrame((y - mean) / np.sqrt(var), columns=items)
        return cls(dict(zip(items, np.nan_to_num(mean), strict=True)),
                   dict(zip(items, var, strict=True)), codes, z)


def initial_values(model: pm.Model, partable: ParTable,
                   moments: ItemMoments) -> dict[str, np.ndarray]:
    """Data-based starting values, as lavaan's "simple" starts.

    Loadings start positive (0.7 item SD, 1 for ordinal items, or 1 for marker-scaled ones) so
    that no chain starts on the symmetric saddle at zero loadings and drifts into a sign-flipped
    mode; intercepts start at item means, residual variances at half the item variance, paths
    at zero, thresholds at the probits of the cumulative proportions.
    """
    start = _start_by_name(partable, moments)
    values: dict[str, np.ndarray] = {}
    for rv in model.free_RVs:
        dims = model.named_vars_to_dims.get(rv.name, ())
        if rv.name.endswith("_params") or rv.name in ("thresholds", "thresholds_centred"):
            members = model.coords[dims[0]]
            vals = np.array([start[m] for m in members])
            values[rv.name] = np.sqrt(vals) if rv.name.endswith("_sd_params") else vals
            if rv.name.startswith(("halfnormal", "gamma", "lognormal", "exponential")):
                values[rv.name] = np.abs(values[rv.name]) + 1e-3
    if "latent_cor_chol" in model.named_vars:
        values["latent_cor_chol"] = np.eye(len(partable.exogenous))
    if "residual_cor_raw" in model.named_vars:
        values["residual_cor_raw"] = np.full(
            model.named_vars["residual_cor_raw"].eval().shape, 0.5)
    for name in raw_latent_names(model):
        values[name] = _start_scores(model, partable, moments, name, start)
    return values


def _start_scores(model: pm.Model, partable: ParTable, moments: ItemMoments, name: str,
                  start: dict[str, float]) -> np.ndarray:
    """Starting values of one latent-score variable: each factor's standardised mean item
    score, shrunk by 0.8 (times the factor's starting SD for centred scores).

    Together with the positive starting loadings this puts every chain in the orientation the
    sign constraint selects; from random scores a chain can settle in the sign-flipped mode
    (the other loadings negative, the constrained first one pinned near 0). A little noise
    keeps respondents with equal answers apart: exact ties make nutpie reject the start (its
    gradient is not finite there).
    """
    single = name.startswith(CENTRED_PREFIX)  # one endogenous latent: a vector over obs
    latents = ([name.removeprefix(CENTRED_PREFIX)] if single
               else list(model.coords[model.named_vars_to_dims[name][1]]))
    n = len(model.coords["obs"])
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.1, (n, len(latents)))
    if moments.standardized is not None:
        t = partable.table
        for k, f in enumerate(latents):
            score = moments.standardized[t.loc[(t.op == "=~") & (t.lhs == f), "rhs"]].mean(axis=1)
            score = (score - score.mean()) / max(score.std(), 1e-6)
            noise[:, k] += 0.8 * score.fillna(0.0).to_numpy()  # 0: no answer to any of its items
    if name != "latent_z":
        noise *= np.sqrt([start[f"{f}~~{f}"] for f in latents])
    return noise[:, 0] if single else noise


def _start_by_name(partable: ParTable, moments: ItemMoments) -> dict[str, float]:
    params = partable.parameters.reset_index(drop=True)
    ordinal = set(partable.ordinal_items())
    start: dict[str, float] = {}
    for name, r in zip(partable.names, params.itertuples(), strict=True):
        if r.op == "=~":
            start[name] = 1.0 if r.rhs in ordinal else 0.7 * np.sqrt(moments.var[r.rhs])
        elif r.op == "~1":
            start[name] = float(moments.mean[r.lhs])
        elif r.op == "~~" and r.lhs == r.rhs and r.free == 0 and not pd.isna(r.value):
            start[name] = float(r.value)  # std.lv's unit variance: centred scores' start SD
        elif r.op == "~~" and r.lhs == r.rhs:
            base = moments.var.get(r.lhs) or moments.var[_first_indicator(partable, r.lhs)]
            start[name] = 0.5 * base
        else:
            start[name] = 0.0 if pd.isna(r.value) else float(r.value)
    for item in ordinal:
        rows = params.index[(params.op == "|") & (params.lhs == item)]
        if item in moments.codes:
            values = start_thresholds(moments.codes[item], len(rows), 1.0)
        else:
            values = np.linspace(-1.0, 1.0, len(rows)) if len(rows) > 1 else np.zeros(1)
        order = np.argsort([int(params.rhs[k][1:]) for k in rows])
        for k, v in zip(np.asarray(rows)[order], values, strict=True):
            start[partable.names[k]] = float(v)
    return start


def _first_indicator(partable: ParTable, latent: str) -> str:
    t = partable.table
    return t.loc[(t.op == "=~") & (t.lhs == latent), "rhs"].iloc[0]


def pymc_model(partable: ParTable, data: Data, likelihood: str = "auto",
               save_latent: bool = False, centre_locations: bool = True,
               latent_scores: str | Sequence[str] | None = None) -> BuiltModel:
    """Build the PyMC model for ``partable`` and ``data``.

    ``data``: answers (items as columns; NaN where an answer is missing: the marginal
    likelihood then sums over missingness patterns, the conditional one over answered cells),
    a :class:`SummaryData` (covariance matrix and N; marginal likelihood, no mean structure) or
    ``None`` (prior only).
    ``save_latent``: keep the latent scores as the deterministic ``latent_scores`` (conditional
    likelihood; marginal fits draw them afterwards, :mod:`bayes_sor.posterior.scores`).
    ``centre_locations``: in the conditional likelihood, sample continuous items' intercepts
    and ordinal items' thresholds centred on the latent scores' sample mean
    (:func:`_uncentre`; the same posterior, better mixing); ``False`` samples them directly,
    for comparisons.
    ``latent_scores``: which latent scores the conditional likelihood samples centred:
    ``"auto"`` (the well-measured constructs), ``"centred"``, ``"non-centred"``, or a list of
    latents (:func:`bayes_sor.model.parameterisation.centred_latents`; ``None``: the model header's
    ``latent_scores`` option, else ``auto``).
    """
    summary = isinstance(data, SummaryData)
    kind = choose_likelihood(partable, likelihood, summary=summary)
    rep = representation(partable)
    raw = isinstance(data, pd.DataFrame)
    y = data[rep.items].to_numpy(dtype=float) if raw else np.zeros((0, len(rep.items)))
    coords = {
        "param": partable.names,
        "item": rep.items,
        "item_": rep.items,
        "latent": rep.latents,
        "obs": np.arange(y.shape[0]),
        "moderator": partable.moderators,
        "quantile": ["p16", "p50", "p84"],
    }
    centred_latents: list[str] = []
    with pm.Model(coords=coords) as model:
        centred = (centred_locations(partable)
                   if centre_locations and raw and kind == "conditional" else [])
        par = parameter_vector(partable, rep, centred)
        if summary:
            marginal_likelihood(_named(par), rep, data.statistics())
        elif raw and kind == "marginal" and np.isnan(y).any():
            casewise_likelihood(_named(par), rep, PatternStatistics.of(y))
        elif raw and kind == "marginal":
            marginal_likelihood(_named(par), rep, sufficient_statistics(y))
        elif raw:
            centred_latents = parameterisation.centred_latents(partable, data, latent_scores)
            conditional_likelihood(par, rep, partable, y, save_latent, centred, centred_latents)
        else:
            _named(par)
    return BuiltModel(model, kind, rep, initial_values(model, partable,
                                                       ItemMoments.of(partable, data)),
                      centred_latents)
