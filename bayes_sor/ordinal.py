"""Ordinal items: observed categories, thresholds and the ordered-probit likelihood.

Theta parameterisation (lavaan's ``parameterization = "theta"``): an ordinal item's latent
response is ``y* = Lambda eta + e`` with ``Var(e) = 1`` and intercept 0 (fixed in the parameter
table); the answer is category ``k`` when ``t_k <= y* < t_{k+1}``. Each answer contributes
``log(Phi(t_{k+1} - mu) - Phi(t_k - mu))`` and nothing else is evaluated: ``pm.OrderedProbit``
builds every category's probability for every answer, which was measured far too slow on an
S-O-R model (stack-notes).

Categories come from the data (lavaan's rule, what ``fit`` does): the observed answers of each
item are recoded to consecutive codes 0..K-1, so an item has K - 1 thresholds, defined between
observed categories only; ``item | t1`` is the threshold above the lowest observed category.
Categories never chosen, or chosen fewer than :data:`SPARSE` times, are reported by item.

A model whose thresholds were made from the declared scale instead (SBC and simulation: the
data come from a model with one threshold fewer than the scale has categories) codes an answer
by its place on the scale, ``answer - low``; a category nobody chose keeps its thresholds, which
then rest on their prior and the order constraint (the posterior stays proper), so the fitted
model is the simulating one even when a simulated data set misses a category.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

from bayes_sor.data import Scale, parse_scale
from bayes_sor.errors import DataError, ModelSpecError
from bayes_sor.partable import ParTable, add_thresholds

#: Stand-in for an infinite threshold (in latent-response SD units). Finite so that the
#: gradient of the extreme categories stays finite: Phi(-1e4) is exactly 0 in log space too.
BIG = 1e4
#: Categories with fewer answers than this are reported as sparse.
SPARSE = 5
_SQRT2 = np.sqrt(2.0)


# ---- data side ---------------------------------------------------------------------------
def observed_categories(frame: pd.DataFrame, items: list[str]) -> dict[str, np.ndarray]:
    """The sorted distinct answers of each ordinal item (missing answers ignored)."""
    return {item: np.sort(frame[item].dropna().unique()) for item in items}


def codes(column: pd.Series | np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Answers -> consecutive codes 0..K-1 (the rank of each answer among the categories)."""
    return np.searchsorted(categories, np.asarray(column, dtype=float)).astype("int64")


def declared_scale(partable: ParTable) -> Scale | None:
    """The answers' range declared in the model header (``scale: 1-7``), if any."""
    return parse_scale(partable.options.get("scale"))


def answer_codes(column: pd.Series | np.ndarray, item: str, partable: ParTable) -> np.ndarray:
    """An ordinal item's answers -> codes 0..K-1 for the item's K - 1 thresholds in the table.

    Categories from the data when the item has one threshold fewer than observed categories
    (the rank among them); otherwise the declared scale's categories when the thresholds
    match it (``answer - low``; unchosen categories keep their thresholds). The two agree
    whenever every category of the scale was chosen.
    """
    params = partable.parameters
    n_thresholds = int(((params.op == "|") & (params.lhs == item)).sum())
    answers = np.asarray(column, dtype=float)
    observed = np.unique(answers[~np.isnan(answers)])
    if len(observed) == n_thresholds + 1:
        return codes(answers, observed)
    scale = declared_scale(partable)
    if scale is not None and scale.high - scale.low == n_thresholds:
        declared = np.arange(scale.low, scale.high + 1, dtype=float)
        if np.isin(observed, declared).all():
            return codes(answers, declared)
    declared_text = (f"nor the declared scale {scale.low}-{scale.high}" if scale is not None
                     else "and the model declares no scale")
    raise ModelSpecError(
        f"the ordinal item {item!r} has {len(observed)} observed categories "
        f"({', '.join(map(_fmt, observed))}), which match neither its {n_thresholds} "
        f"thresholds in the model {declared_text}; add thresholds from the data with "
        "bayes_sor.ordinal.prepare(partable, data), or declare the answers' range in the model "
        "header ('scale: 1-7') to keep thresholds of categories nobody chose"
    )


def category_notes(frame: pd.DataFrame, items: list[str],
                   scale_range: tuple[int, int] | None = None) -> list[str]:
    """Items whose categories are empty (never chosen) or sparse (< :data:`SPARSE` answers).

    With empty categories the note says which observed categories the thresholds separate,
    since ``t1`` is then not the threshold above the scale's lowest category.
    """
    notes = []
    for item, cats in observed_categories(frame, items).items():
        counts = frame[item].value_counts()
        low, high = scale_range or (int(cats.min()), int(cats.max()))
        whole = np.all(cats == np.round(cats))
        empty = [k for k in range(low, high + 1) if k not in set(cats)] if whole else []
        sparse = [f"{_fmt(c)} ({int(counts[c])}x)" for c in cats if counts[c] < SPARSE]
        parts = []
        if empty:
            parts.append(f"categories {', '.join(map(str, empty))} never chosen")
        if sparse:
            parts.append(f"sparse categories {', '.join(sparse)}")
        if parts:
            between = ", ".join(f"t{k + 1} {_fmt(a)}|{_fmt(b)}"
                                for k, (a, b) in enumerate(itertools.pairwise(cats)))
            notes.append(f"{item!r}: {'; '.join(parts)} -> modelled with {len(cats)} observed "
                         f"categories ({len(cats) - 1} thresholds"
                         f"{f': {between}' if empty else ''})")
    return notes


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def prepare(partable: ParTable, frame: pd.DataFrame,
            scale_range: tuple[int, int] | None = None) -> ParTable:
    """Add the thresholds the data imply (observed categories - 1 per ordinal item).

    Warns, naming the items, when categories are empty or sparse: thresholds are defined
    between observed categories only, and a threshold next to a sparse category rests largely
    on its prior.
    """
    items = partable.ordinal_items()
    if not items:
        return partable
    single = {item: cats for item, cats in observed_categories(frame, items).items()
              if len(cats) < 2}
    if single:
        listed = ", ".join(f"{item!r} (only {', '.join(map(_fmt, cats)) or 'no answers'})"
                           for item, cats in single.items())
        raise DataError(
            f"the ordinal item(s) {listed} have fewer than two observed categories, so they "
            "carry no information about their construct; drop them from the model"
        )
    notes = category_notes(frame, items, scale_range)
    if notes:
        warnings.warn("ordinal items with empty or sparse categories: " + "; ".join(notes),
                      stacklevel=2)
    counts = {item: len(cats) for item, cats in observed_categories(frame, items).items()}
    return add_thresholds(partable, counts)


# ---- the ordered transform of all thresholds ---------------------------------------------
class GroupedOrdered(Transform):
    """Thresholds increasing within each item: one unconstrained vector for all items.

    Each item's middle threshold (its anchor, ``t_{a}`` with ``a = K // 2`` of its ``K``
    thresholds, counted from 0) is unconstrained; the others are log gaps outwards from it:
    ``t_k = t_{k-1} + exp(y_k)`` above the anchor and ``t_k = t_{k+1} - exp(y_k)`` below.
    Anchoring in the middle rather than at the lowest threshold (PyMC's ``ordered``) matters
    for Likert items: the lowest category is often chosen by a handful of respondents, so
    ``t_1`` is the least determined threshold, and as the base of every other one it coupled
    them all (Study A ordinal: 56 leapfrog steps per draw with ``t_1`` as the base, 31 with the
    anchor; the posterior is the same, only the coordinates NUTS moves in differ).
    """

    name = "grouped_ordered"
    ndim_supp = 1

    def __init__(self, first: np.ndarray) -> None:
        first = np.asarray(first, dtype=bool)
        index = np.arange(len(first))
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], len(first))
        self.anchor = np.concatenate([np.full(e - s, s + (e - s) // 2)
                                      for s, e in zip(starts, ends, strict=True)]).astype(int)
        self.is_anchor = index == self.anchor
        self.above = index > self.anchor
        self.below = index < self.anchor
        # the threshold each gap is measured from: the next one below the anchor, else the last
        self.neighbour = np.where(self.below, index + 1, np.where(self.above, index - 1, index))

    def backward(self, value, *inputs):
        gaps = pt.exp(value)
        rising = pt.cumsum(pt.switch(self.above, gaps, 0.0), axis=-1)
        # falling[k] = sum of the gaps below the anchor from k on (a reversed cumulative sum)
        falling = pt.cumsum(pt.switch(self.below, gaps, 0.0)[..., ::-1], axis=-1)[..., ::-1]
        a = self.anchor
        return value[..., a] + (rising - rising[..., a]) - (falling - falling[..., a])

    def forward(self, value, *inputs):
        neighbour = value[..., self.neighbour]
        gap = pt.switch(self.below, neighbour - value, value - neighbour)
        # switch twice: log() never sees the anchor's (meaningless, zero) gap
        return pt.switch(self.is_anchor, value, pt.log(pt.switch(self.is_anchor, 1.0, gap)))

    def log_jac_det(self, value, *inputs):
        return pt.sum(pt.switch(self.is_anchor, 0.0, value), axis=-1)


# ---- likelihood --------------------------------------------------------------------------
def log_interval_probability(a: pt.TensorVariable, b: pt.TensorVariable) -> pt.TensorVariable:
    """log(Phi(b) - Phi(a)) for a < b.

    Intervals above zero are mirrored (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)) so the difference
    is always taken between lower-tail probabilities, which ``erfc`` gives to full relative
    precision down to z = -37 (Phi = 6e-300), the range of Stan's ``ordered_probit``. Beyond it
    the probability underflows to 0 and the log-density is -inf, which NUTS rejects like any
    divergent step; no posterior of an ordinal model comes near it. Two ``erfc`` per answer
    (and an ``exp`` each in the gradient) is half the cost of log Phi evaluated stably in both
    tails with ``erfcx`` (measured: 480 vs 1057 us for logp + gradient of 357 x 33 answers), and
    the likelihood dominates an ordinal fit.
    """
    flip = pt.gt(a, 0.0)
    low = pt.switch(flip, -b, a)
    high = pt.switch(flip, -a, b)
    return pt.log(pt.erfc(-high / _SQRT2) - pt.erfc(-low / _SQRT2)) - np.log(2.0)


def threshold_layout(partable: ParTable, items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each item's thresholds in ``par`` and its offset in the padded vector.

    The padded vector is, per item, ``[-BIG, t_1, ..., t_{K-1}, +BIG]``; returns the ``par``
    position of every padded entry (-1 for the padding) and each item's first padded index.
    """
    params = partable.parameters.reset_index(drop=True)
    positions: list[int] = []
    offsets = []
    for item in items:
        rows = params.index[(params.op == "|") & (params.lhs == item)].to_numpy()
        if not len(rows):
            raise ModelSpecError(
                f"the ordinal item {item!r} has no thresholds; add them from the data with "
                "bayes_sor.ordinal.prepare(partable, data) before building the model"
            )
        offsets.append(len(positions))
        positions += [-1, *rows.tolist(), -2]
    return np.array(positions), np.array(offsets)


def padded_thresholds(par: pt.TensorVariable, positions: np.ndarray) -> pt.TensorVariable:
    """``[-BIG, t_1.., +BIG]`` per item, concatenated (see :func:`threshold_layout`)."""
    values = par[np.maximum(positions, 0)]
    values = pt.switch(np.equal(positions, -1), -BIG, values)
    return pt.switch(np.equal(positions, -2), BIG, values)


def ordinal_logp(value: pt.TensorVariable, mu: pt.TensorVariable, sigma: pt.TensorVariable,
                 tau: pt.TensorVariable, offsets: pt.TensorVariable) -> pt.TensorVariable:
    """Elementwise log-probability of category codes ``value`` (obs x item).

    ``mu``: latent-response means, ``sigma``: residual SDs per item (1 in the theta
    parameterisation), ``tau``: padded thresholds, ``offsets``: each item's start in ``tau``.
    """
    lower = tau[offsets + value]
    upper = tau[offsets + value + 1]
    return log_interval_probability((lower - mu) / sigma, (upper - mu) / sigma)


def sort_thresholds(partable: ParTable, par: np.ndarray) -> np.ndarray:
    """Thresholds sorted within each item (prior draws of an ordered vector come unsorted)."""
    par = np.array(par, dtype=float)
    params = partable.parameters.reset_index(drop=True)
    for item in partable.ordinal_items():
        rows = params.index[(params.op == "|") & (params.lhs == item)].to_numpy()
        par[..., rows] = np.sort(par[..., rows], axis=-1)
    return par


def start_thresholds(y_codes: np.ndarray, n_thresholds: int, loading: float) -> np.ndarray:
    """Starting thresholds from the cumulative proportions (probit of them, scaled to y*)."""
    counts = np.bincount(y_codes, minlength=n_thresholds + 1)[: n_thresholds + 1]
    cumulative = np.cumsum(counts)[:-1] / max(counts.sum(), 1)
    from scipy.special import ndtri

    start = ndtri(np.clip(cumulative, 0.01, 0.99)) * np.sqrt(1.0 + loading**2)
    # strictly increasing even when two cumulative proportions were clipped to the same value
    return start + 1e-3 * np.arange(n_thresholds)
