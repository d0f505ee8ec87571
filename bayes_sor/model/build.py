"""Parameter table + data -> PyMC model: :func:`pymc_model` chooses the likelihood and composes
the parameter vector (:mod:`~bayes_sor.model.parameters`), the marginal
(:mod:`~bayes_sor.model.marginal`), quadrature (:mod:`~bayes_sor.model.quadrature`) or
conditional (:mod:`~bayes_sor.model.conditional`) likelihood and the starting values
(:mod:`~bayes_sor.model.start_values`).

Data may be raw answers (a DataFrame), a covariance matrix with N
(:class:`~bayes_sor.data.summary_statistics.SummaryData`, marginal likelihood only) or ``None``
(the prior alone, for prior draws).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pymc as pm

from bayes_sor.data.missing import PatternStatistics
from bayes_sor.data.summary_statistics import SummaryData
from bayes_sor.errors import ModelSpecError
from bayes_sor.model import parameterisation
from bayes_sor.model.built import BuiltModel
from bayes_sor.model.conditional import (
    centred_locations,
    conditional_likelihood,
    grouped_conditional_likelihood,
)
from bayes_sor.model.latent import raw_latent_names
from bayes_sor.model.marginal import (
    casewise_likelihood,
    marginal_likelihood,
    own_intercepts,
    pooled_intercepts,
    sufficient_statistics,
    uncentred_intercepts,
    whitened_intercepts,
)
from bayes_sor.model.ordinal import STANDARDISED_THRESHOLDS
from bayes_sor.model.parameters import named_par, parameter_vector
from bayes_sor.model.quadrature import (
    integrated_latents,
    quadrature_likelihood,
    quadrature_reason,
)
from bayes_sor.model.start_values import Data, ItemMoments, initial_values
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import ParTable

LIKELIHOODS = ("auto", "marginal", "conditional", "quadrature")


def marginal_reason(partable: ParTable) -> str:
    """Why the marginal likelihood cannot be used for this model ('' when it can)."""
    if partable.interactions:
        return "the model has a latent interaction, whose likelihood has no closed form"
    if partable.ordinal_items():
        return "the model has ordinal items, whose likelihood is not multivariate normal"
    return ""


def choose_likelihood(partable: ParTable, likelihood: str = "auto", summary: bool = False) -> str:
    """Resolve ``auto``: marginal whenever it is valid; else quadrature for a one-group model
    with continuous items whose latent interactions all share one exogenous moderator; else
    conditional.

    A latent interaction has no closed-form likelihood. Where every product term has an
    exogenous latent factor (the moderator), the items are continuous and the model has no
    observed structural variable, the quadrature likelihood integrates the moderator out and
    samples no latent score: the same posterior as the conditional likelihood in fewer, better
    mixing dimensions (benchmarks/RESULTS.md, section 6.5: with the CLI's defaults 3.9-4.2x
    its min bulk ESS per second on Study A, 16-20x on a three-factor model with N = 2000, and
    2.1x with one moderator on two chained paths, whose layout is not affine and takes 48
    fixed nodes). ``auto`` takes it for one integrated latent. Two moderators need a product
    grid of NODES ** 2 fixed nodes per respondent (68 ms per gradient at N = 500 against the
    conditional likelihood's 0.08 ms), and multiple-group models have no quadrature
    likelihood: both keep the conditional one.

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
    if likelihood == "quadrature" and (why := quadrature_reason(partable)):
        raise ModelSpecError(
            f"the quadrature likelihood cannot be used: {why}; use --likelihood conditional "
            "(or auto)"
        )
    if summary and (reason or likelihood in ("conditional", "quadrature")):
        raise ModelSpecError(
            "a covariance matrix can only be analysed with the marginal likelihood"
            + (f", but {reason}" if reason else "")
            + "; give the raw answers (--data) instead"
        )
    if likelihood != "auto":
        return likelihood
    if not reason:
        return "marginal"
    one_moderator = not quadrature_reason(partable) and len(integrated_latents(partable)) == 1
    return "quadrature" if one_moderator else "conditional"


def pymc_model(
    partable: ParTable,
    data: Data,
    likelihood: str = "auto",
    save_latent: bool = False,
    centre_locations: bool = True,
    latent_scores: str | Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    nodes: int | None = None,
) -> BuiltModel:
    """Build the PyMC model for ``partable`` and ``data``.

    ``data``: answers (items as columns; NaN where an answer is missing: the marginal
    likelihood then sums over missingness patterns, the conditional one over answered cells),
    a :class:`SummaryData` (covariance matrix and N; marginal likelihood, no mean structure) or
    ``None`` (prior only).
    ``save_latent``: keep the latent scores as the deterministic ``latent_scores`` (conditional
    likelihood; marginal fits draw them afterwards, :mod:`bayes_sor.posterior.scores`).
    ``centre_locations``: in the conditional likelihood, sample continuous items' intercepts
    and ordinal items' thresholds centred on the latent scores' sample mean (one group's
    thresholds also divided by the item's latent-response SD,
    :func:`bayes_sor.model.conditional._uncentre`; the same posterior, better mixing), and
    in a multiple-group marginal one the shared intercepts as pooled item means
    (:func:`bayes_sor.model.marginal.uncentred_intercepts`) and each group's own ones whitened
    by its answers' covariance (:func:`bayes_sor.model.marginal.whitened_intercepts`); ``False``
    samples them directly,
    for comparisons.
    ``latent_scores``: which latent scores the conditional likelihood samples centred:
    ``"auto"`` (the well-measured constructs), ``"centred"``, ``"non-centred"``, or a list of
    latents (:func:`bayes_sor.model.parameterisation.centred_latents`; ``None``: the model header's
    ``latent_scores`` option, else ``auto``).
    ``groups``: each respondent's group label, for a multiple-group table (the marginal
    likelihood: one term per group, :func:`grouped_marginal`; the conditional one: each
    respondent under its group's parameters,
    :func:`~bayes_sor.model.conditional.grouped_conditional_likelihood`).
    ``nodes``: Gauss-Hermite nodes per integrated latent of the quadrature likelihood (default:
    its rule's, :func:`bayes_sor.model.quadrature.respondent_loglik`).
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
        centred = (
            centred_locations(partable)
            if centre_locations and raw and kind == "conditional"
            else []
        )
        pooled, own = [], []
        if partable.groups and centre_locations and raw and kind == "marginal":
            pooled, own = pooled_intercepts(partable), own_intercepts(partable)
            centred = pooled + own
        par = parameter_vector(partable, rep, centred)
        if partable.groups and raw and kind == "conditional":
            centred_latents = parameterisation.centred_latents(partable, data, latent_scores)
            grouped_conditional_likelihood(
                par,
                partable,
                y,
                _respondent_groups(groups, y),
                save_latent,
                centred,
                centred_latents,
            )
        elif partable.groups:
            source = "summary" if summary else kind if raw else "none"
            if pooled:
                par = uncentred_intercepts(par, partable, pooled, _group_shares(groups, partable))
            if own:
                par = whitened_intercepts(par, partable, own, y, _respondent_groups(groups, y))
            summaries = [d.statistics() for d in data.group_data] if summary else None
            grouped_marginal(named_par(par), partable, y, groups, source, summaries)
        elif summary:
            marginal_likelihood(named_par(par), rep, data.statistics())
        elif raw and kind == "marginal" and np.isnan(y).any():
            casewise_likelihood(named_par(par), rep, PatternStatistics.of(y))
        elif raw and kind == "marginal":
            marginal_likelihood(named_par(par), rep, sufficient_statistics(y))
        elif raw and kind == "quadrature":
            quadrature_likelihood(named_par(par), rep, partable, y, nodes)
        elif raw:
            centred_latents = parameterisation.centred_latents(partable, data, latent_scores)
            conditional_likelihood(par, rep, partable, y, save_latent, centred, centred_latents)
        else:
            named_par(par)
    return BuiltModel(
        model,
        kind,
        rep,
        initial_values(model, partable, ItemMoments.of(partable, data)),
        centred_latents,
        raw_latent_names(model),
        STANDARDISED_THRESHOLDS in model.named_vars,
    )


def grouped_marginal(
    par,
    partable: ParTable,
    y: np.ndarray,
    groups: Sequence[str] | None,
    kind: str,
    summaries: list[dict] | None = None,
) -> None:
    """The marginal likelihood of a multiple-group model: each group's answers against its
    own model-implied moments (:func:`~bayes_sor.spec.matrices.representation` of the group),
    from the group's sufficient statistics, case-wise over its missingness patterns where
    answers are missing. Potentials ``loglik`` (first group), ``loglik_g2``, ... ``kind``:
    the likelihood chosen, ``"summary"`` for a covariance matrix per group (``summaries``:
    each group's N - 1 and Cholesky factor: its Wishart likelihood), ``"none"`` for the
    prior."""
    if kind == "none":
        return
    if kind == "summary":
        for g, stats in enumerate(summaries or [], start=1):
            suffix = "" if g == 1 else f"_g{g}"
            marginal_likelihood(par, representation(partable, g), stats, suffix)
        return
    labels = _respondent_groups(groups, y)
    for g, label in enumerate(partable.groups, start=1):
        rep = representation(partable, g)
        part = y[labels == label]
        suffix = "" if g == 1 else f"_g{g}"
        if np.isnan(part).any():
            casewise_likelihood(par, rep, PatternStatistics.of(part), suffix)
        else:
            marginal_likelihood(par, rep, sufficient_statistics(part), suffix)


def _respondent_groups(groups: Sequence[str] | None, y: np.ndarray) -> np.ndarray:
    """Each respondent's group label, checked against the answers."""
    if groups is None or len(groups) != len(y):
        raise ModelSpecError("a multiple-group model needs each respondent's group")
    return np.asarray(groups, dtype=str)


def _group_shares(groups: Sequence[str] | None, partable: ParTable) -> np.ndarray:
    """Each group's share of the respondents, in the table's group order."""
    if groups is None:
        raise ModelSpecError("a multiple-group model needs each respondent's group")
    labels = np.asarray(groups, dtype=str)
    return np.array([(labels == g).mean() for g in partable.groups])
