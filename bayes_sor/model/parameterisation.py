"""Which latent scores the conditional likelihood samples centred, and which non-centred.

A respondent's latent score can be sampled itself (centred: ``eta_i ~ N(mean_i, psi)``) or as
a standard-normal deviate (non-centred: ``eta_i = mean_i + sqrt(psi) z_i``). Both define the
same posterior; NUTS prefers the one in which the scores are least coupled to the structural
parameters (Papaspiliopoulos, Roberts & Skold 2007; Betancourt & Girolami 2015). When a
construct's items pin each score down far more tightly than its prior (the structural model)
does, every non-centred deviate must move whenever a correlation or path moves, while the
centred scores barely depend on them; when the items say little, it is the other way round.

The comparison is made per latent, in units of its SD, before sampling:

- the items' information about one score, ``sum_j lambda_j^2 / (1 - lambda_j^2)`` with
  one-factor standardised loadings from the item correlations (closed form, triads);
- the prior's precision for that score given the other latents: ``(R^-1)_ff`` over the
  exogenous latents' correlations R for an exogenous one, ``1 / (1 - R^2)`` of its structural
  equation for an endogenous one, from the constructs' composite scores disattenuated by their
  reliability (omega).

``auto`` centres a latent when the first is at least :data:`INFORMATION_RATIO` times the
second. Alpha alone misjudges both ends: one near-perfect item makes a construct far better
measured than its alpha says, and two strongly correlated exogenous latents make each one's
prior given the other far more precise, so its items no longer dominate. On Study A every
latent is centred. What each choice cost in leapfrog steps and ESS, on prior-drawn SBC data
sets and on Study A: ``benchmarks/RESULTS.md``, section 4.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_sor.errors import ModelSpecError
from bayes_sor.spec.partable import ParTable
from bayes_sor.spec.syntax import LATENT_SCORES

CHOICES = LATENT_SCORES
#: centre a latent's scores when its items carry this multiple of its prior's information
INFORMATION_RATIO = 1.5
#: standardised loadings are kept inside (0.1, 0.995): information stays finite
_LOADING_SQ = (0.01, 0.99)


def sampled_latents(partable: ParTable) -> list[str]:
    """Latents whose scores the conditional likelihood samples (observed structural variables
    enter as data)."""
    observed = set(partable.observed_structural)
    return [f for f in partable.latents if f not in observed]


def standardized_loadings(corr: np.ndarray) -> np.ndarray:
    """Squared one-factor standardised loadings of items from their correlation matrix.

    A congeneric factor implies ``r_jk r_jl / r_kl = lambda_j^2`` for any two other items k, l
    (the triad identity); each item takes the median over the pairs whose ``r_kl`` is not
    near zero. Two items: ``lambda^2 = |r_12|``. Clipped to (0.01, 0.99).
    """
    k = corr.shape[0]
    if k == 2:
        return np.full(2, np.clip(abs(corr[0, 1]), *_LOADING_SQ))
    squares = np.empty(k)
    for j in range(k):
        others = [i for i in range(k) if i != j]
        triads = [
            corr[j, a] * corr[j, b] / corr[a, b]
            for a, b in itertools.combinations(others, 2)
            if abs(corr[a, b]) > 0.05
        ]
        squares[j] = np.median(triads) if triads else np.mean(np.abs(corr[j, others]))
    return np.clip(squares, *_LOADING_SQ)


def _items(partable: ParTable, f: str) -> list[str]:
    t = partable.table
    return t.loc[(t.op == "=~") & (t.lhs == f), "rhs"].tolist()


def score_information(partable: ParTable, frame: pd.DataFrame) -> dict[str, float]:
    """The items' information about one respondent's score, in units of the latent's SD
    (NaN for a latent with a single item, whose loading the data do not give)."""
    info = {}
    for f in sampled_latents(partable):
        own = _items(partable, f)
        if len(own) < 2:
            info[f] = np.nan
            continue
        squares = standardized_loadings(frame[own].astype(float).corr().to_numpy())
        info[f] = float(np.sum(squares / (1 - squares)))
    return info


def prior_precision(partable: ParTable, frame: pd.DataFrame) -> dict[str, float]:
    """The precision of each sampled latent's prior given the other latents, in units of its
    SD (see the module docstring); NaN where a latent's reliability is unknown."""
    names, composites, reliability = [], [], []
    for f in partable.latents:
        own = _items(partable, f)
        answers = frame[own].astype(float)
        standardised = (answers - answers.mean()) / answers.std()
        composites.append(standardised.mean(axis=1))
        names.append(f)
        if f in partable.observed_structural:
            reliability.append(1.0)
        elif len(own) < 2:
            reliability.append(np.nan)
        else:
            lam = np.sqrt(standardized_loadings(answers.corr().to_numpy()))
            reliability.append(lam.sum() ** 2 / (lam.sum() ** 2 + np.sum(1 - lam**2)))
    rel = np.array(reliability)
    corr = pd.concat(composites, axis=1).corr().to_numpy() / np.sqrt(np.outer(rel, rel))
    np.fill_diagonal(corr, 1.0)
    corr = _positive_definite(corr)
    pos = {f: i for i, f in enumerate(names)}
    exo = [pos[f] for f in partable.exogenous]
    exo_precision = np.linalg.inv(corr[np.ix_(exo, exo)]) if exo else np.zeros((0, 0))
    precision = {}
    regressions = partable.regressions
    for f in sampled_latents(partable):
        i = pos[f]
        if f in partable.exogenous:
            precision[f] = float(exo_precision[exo.index(i), exo.index(i)])
            continue
        causes = [pos[c] for c in regressions.loc[regressions.lhs == f, "rhs"] if c in pos]
        r = corr[i, causes]
        explained = float(r @ np.linalg.solve(corr[np.ix_(causes, causes)], r)) if causes else 0
        precision[f] = 1.0 / max(1.0 - explained, 0.05)
    return {f: (np.nan if np.isnan(rel[pos[f]]) else v) for f, v in precision.items()}


def _positive_definite(corr: np.ndarray) -> np.ndarray:
    """Disattenuated correlations can leave [-1, 1]: eigenvalues floored at 0.05, unit
    diagonal restored."""
    if np.isnan(corr).any():
        corr = np.where(np.isnan(corr), 0.0, corr)
    values, vectors = np.linalg.eigh(corr)
    fixed = vectors @ np.diag(np.maximum(values, 0.05)) @ vectors.T
    scale = 1 / np.sqrt(np.diag(fixed))
    return fixed * np.outer(scale, scale)


def centred_latents(
    partable: ParTable, frame: pd.DataFrame | None, choice: str | Sequence[str] | None = None
) -> list[str]:
    """The latents whose scores are sampled centred, in the table's order.

    ``choice``: ``"auto"`` (a latent whose items carry at least :data:`INFORMATION_RATIO`
    times its prior's information, see the module docstring), ``"centred"`` (all),
    ``"non-centred"`` (none), or the latents themselves (a list; how a compiled model is
    rebuilt for new data with the same parameterisation). ``None``: the model header's
    ``latent_scores`` option, else ``auto``.
    """
    if choice is None:
        choice = partable.options.get("latent_scores", "auto")
    candidates = sampled_latents(partable)
    if not isinstance(choice, str):
        unknown = sorted(set(choice) - set(candidates))
        if unknown:
            raise ModelSpecError(
                f"cannot centre the scores of {unknown}: not sampled latents "
                f"of the model ({candidates})"
            )
        return [f for f in candidates if f in set(choice)]
    if choice not in CHOICES:
        raise ModelSpecError(
            f"unknown latent-score parameterisation {choice!r}; use one of {', '.join(CHOICES)}"
        )
    if choice == "centred":
        return candidates
    if choice == "non-centred" or frame is None:
        return []
    info, prior = score_information(partable, frame), prior_precision(partable, frame)
    return [f for f in candidates if info[f] >= INFORMATION_RATIO * prior[f]]
