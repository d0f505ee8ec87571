"""Ordinal items, the model side: the ordered transform of the thresholds and the
ordered-probit likelihood (the categories are :mod:`bayes_sor.data.categories`).

Theta parameterisation (lavaan's ``parameterization = "theta"``): an ordinal item's latent
response is ``y* = Lambda eta + e`` with ``Var(e) = 1`` and intercept 0 (fixed in the parameter
table); the answer is category ``k`` when ``t_k <= y* < t_{k+1}``. Each answer contributes
``log(Phi(t_{k+1} - mu) - Phi(t_k - mu))`` and nothing else is evaluated: ``pm.OrderedProbit``
builds every category's probability for every answer, which was measured far too slow on an
S-O-R model (stack-notes).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from scipy.special import ndtri

from bayes_sor.errors import ModelSpecError
from bayes_sor.spec.partable import ParTable

#: Stand-in for an infinite threshold (in latent-response SD units). Finite so that the
#: gradient of the extreme categories stays finite: Phi(-1e4) is exactly 0 in log space too.
BIG = 1e4
#: the sampled thresholds of a one-group conditional model: each item's thresholds minus
#: lambda' mean(eta), over its latent-response SD (:func:`response_sd`)
STANDARDISED_THRESHOLDS = "thresholds_standardised"
_SQRT2 = np.sqrt(2.0)


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
        self.anchor = np.concatenate(
            [np.full(e - s, s + (e - s) // 2) for s, e in zip(starts, ends, strict=True)]
        ).astype(int)
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


def threshold_layout(
    partable: ParTable, items: list[str], group: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each item's thresholds in ``par`` and its offset in the padded vector.

    The padded vector is, per item, ``[-BIG, t_1, ..., t_{K-1}, +BIG]``; returns the ``par``
    position of every padded entry (-1 for the padding) and each item's first padded index.
    ``group``: the rows of that group of a multiple-group table.
    """
    params = partable.parameters.reset_index(drop=True)
    if group is not None:
        params = params[params.group == group]
    positions: list[int] = []
    offsets = []
    for item in items:
        rows = params.index[(params.op == "|") & (params.lhs == item)].to_numpy()
        if not len(rows):
            raise ModelSpecError(
                f"the ordinal item {item!r} has no thresholds; add them from the data with "
                "bayes_sor.data.categories.add_ordinal_thresholds(partable, data) before building "
                "the model"
            )
        offsets.append(len(positions))
        positions += [-1, *rows.tolist(), -2]
    return np.array(positions), np.array(offsets)


def padded_thresholds(par: pt.TensorVariable, positions: np.ndarray) -> pt.TensorVariable:
    """``[-BIG, t_1.., +BIG]`` per item, concatenated (see :func:`threshold_layout`)."""
    values = par[np.maximum(positions, 0)]
    values = pt.switch(np.equal(positions, -1), -BIG, values)
    return pt.switch(np.equal(positions, -2), BIG, values)


def ordinal_logp(
    value: pt.TensorVariable,
    mu: pt.TensorVariable,
    sigma: pt.TensorVariable,
    tau: pt.TensorVariable,
    offsets: pt.TensorVariable,
) -> pt.TensorVariable:
    """Elementwise log-probability of category codes ``value`` (obs x item).

    ``mu``: latent-response means, ``sigma``: residual SDs per item (1 in the theta
    parameterisation), ``tau``: padded thresholds, ``offsets``: each item's start in ``tau``.
    """
    lower = tau[offsets + value]
    upper = tau[offsets + value + 1]
    return log_interval_probability((lower - mu) / sigma, (upper - mu) / sigma)


def response_sd(
    lam: pt.TensorVariable, residual_var: pt.TensorVariable, eta: pt.TensorVariable
) -> pt.TensorVariable:
    """Each item's latent-response SD over the respondents, sqrt(theta_jj + var_i(lambda_j'
    eta_i)), for loading rows ``lam`` (items x latents) and latent scores ``eta`` (obs x latent).

    The scale of the thresholds :func:`bayes_sor.model.conditional._uncentre` samples
    standardised: the data fix a threshold in these units (the probit of its cumulative
    proportion), while in the latent response's own units it grows with the loading.
    """
    centred = eta - eta.mean(axis=0)
    cov = centred.T @ centred / eta.shape[0]
    return pt.sqrt(residual_var + pt.sum((lam @ cov) * lam, axis=-1))


def standardised_start(thresholds: np.ndarray) -> np.ndarray:
    """Starting standardised thresholds from starting thresholds in latent-response units
    (:func:`start_thresholds` at loading 1: the response SD is sqrt(2) there)."""
    return np.asarray(thresholds) / np.sqrt(2.0)


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
    start = ndtri(np.clip(cumulative, 0.01, 0.99)) * np.sqrt(1.0 + loading**2)
    # strictly increasing even when two cumulative proportions were clipped to the same value
    return start + 1e-3 * np.arange(n_thresholds)
