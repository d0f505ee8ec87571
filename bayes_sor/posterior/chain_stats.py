"""Convergence statistics and intervals of MCMC draws, computed as ArviZ (arviz-stats 1.x)
computes them, without importing arviz-stats.

Importing ``arviz_stats`` imports ``scipy.stats`` (its diagnostics, its density code and its
LOO module all do), ~0.6 CPU s: more than a third of what the chains of a small fit spend
sampling, and a fit spends it while they sample, on the same two cores
(``benchmarks/RESULTS.md``, "The fit command without scipy.stats"). The summaries of every fit
need only the rank-normalised split R-hat, the bulk and tail ESS, the equal-tailed and
highest-density intervals and the E-BFMI; they are written here with numpy and
``scipy.special.ndtri`` (loaded with numba's LAPACK bindings anyway), step by step as
arviz-stats writes them, so the numbers are the same to the last bit (``tests/posterior/
test_chain_stats.py`` compares them with arviz-stats'). The references are Vehtari et al.
(2021), "Rank-normalization, folding, and localization: an improved R-hat", and Betancourt
(2016) for the E-BFMI.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

#: arviz-stats' default interval probability (``rcParams["stats.ci_prob"]``), which its tail
#: ESS takes as the pair of quantiles (0.11, 0.89) whose ESS it reports (the smaller)
TAIL_ESS_PROB = 0.89
#: Blom's offset of the rank-normal transformation
_BLOM = 3 / 8


def _invalid(draws: np.ndarray, min_chains: int) -> bool:
    """arviz-stats' ``not_valid``: a NaN, fewer than 4 draws or too few chains."""
    n_chain, n_draw = draws.shape
    return bool(np.isnan(draws).any()) or n_draw < 4 or n_chain < min_chains


def _split_chains(draws: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as chains of their own (an odd middle draw dropped)."""
    half = draws.shape[1] // 2
    return np.vstack((draws[:, :half], draws[:, -half:]))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the flattened values, ties given their average rank (``scipy.stats.
    rankdata(method="average")``: whole or half numbers, so exact in floating point)."""
    flat = values.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_values = flat[order]
    new_value = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.empty(flat.size, dtype=np.intp)
    group[order] = np.cumsum(new_value)  # each value's group of equal values, in sorted order
    bounds = np.r_[np.nonzero(new_value)[0], flat.size]
    return 0.5 * (bounds[group] + bounds[group - 1] + 1)


def _z_scale(values: np.ndarray) -> np.ndarray:
    """Rank-normalised values: normal quantiles of the ranks' Blom positions."""
    ranks = _average_ranks(values)
    positions = (ranks - _BLOM) / (ranks.size - 2 * _BLOM + 1)
    return ndtri(positions).reshape(values.shape)


def _rhat(chains: np.ndarray) -> float:
    """The potential scale reduction of chains (rows)."""
    n_draw = chains.shape[1]
    between = n_draw * np.var(np.mean(chains, axis=1), axis=None, ddof=1)
    within = np.mean(np.var(chains, axis=1, ddof=1))
    return float(np.sqrt((between / within + n_draw - 1) / n_draw))


def _next_regular(target: int) -> int:
    """The smallest 2-3-5-smooth number >= ``target`` (``scipy.fftpack.next_fast_len``), an
    FFT length pocketfft computes fast."""
    length = target
    while True:
        rest = length
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return length
        length += 1


def _autocov(chains: np.ndarray) -> np.ndarray:
    """Each chain's autocovariance at every lag, through the FFT."""
    n = chains.shape[1]
    m = _next_regular(2 * n)
    centred = chains - chains.mean(1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=1)
    spectrum *= np.conjugate(spectrum)
    cov = np.fft.irfft(spectrum, n=m, axis=1)[:, :n]
    cov /= n
    return cov


def _ess(chains: np.ndarray) -> float:
    """The effective sample size of chains (rows), with Geyer's initial monotone sequence."""
    chains = np.asarray(chains, dtype=float)
    if (np.max(chains) - np.min(chains)) < np.finfo(float).resolution:
        return float(chains.size)
    n_chain, n_draw = chains.shape
    acov = _autocov(chains)
    mean_var = np.mean(acov[:, 0]) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(chains.mean(axis=1), axis=None, ddof=1)
    rho = np.zeros(n_draw)
    rho_even = 1.0
    rho[0] = rho_even
    rho_odd = 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho[1] = rho_odd
    # Geyer's initial positive sequence
    t = 1
    while t < (n_draw - 3) and (rho_even + rho_odd) > 0.0:
        rho_even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        rho_odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if (rho_even + rho_odd) >= 0:
            rho[t + 1] = rho_even
            rho[t + 2] = rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    # Geyer's initial monotone sequence
    t = 1
    while t <= max_t - 2:
        if (rho[t + 1] + rho[t + 2]) > (rho[t - 1] + rho[t]):
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    size = n_chain * n_draw
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1 : max_t + 2])
    tau = max(tau, 1 / np.log10(size))
    return np.nan if np.isnan(rho).any() else size / tau


def convergence(draws: np.ndarray) -> tuple[float, float, float]:
    """(R-hat, bulk ESS, tail ESS) of (chain, draw) draws, the split chains rank-normalised
    once for both of the first two. R-hat: the rank-normalised split R-hat, the larger of the
    bulk's and the folded tails' (NaN with one chain); bulk ESS: the ESS of the rank-normalised
    split chains; tail ESS: :func:`ess_tail`. NaN with a NaN or fewer than 4 draws."""
    if _invalid(draws, min_chains=1):
        return np.nan, np.nan, np.nan
    split = _split_chains(draws)
    bulk = _z_scale(split)
    if _invalid(draws, min_chains=2):
        rhat = np.nan
    else:
        rhat = max(_rhat(bulk), _rhat(_z_scale(abs(split - np.median(split)))))
    return rhat, _ess(bulk), ess_tail(draws)


def ess_tail(draws: np.ndarray, prob: float = TAIL_ESS_PROB) -> float:
    """Tail ESS of (chain, draw) draws: the smaller ESS of the indicators of lying below the
    quantiles ``1 - prob`` and ``prob``."""
    if _invalid(draws, min_chains=1):
        return np.nan
    return min(
        _ess(_split_chains(draws <= np.quantile(draws, q, axis=None)))
        for q in sorted((prob, 1 - prob))
    )


def eti(draws: np.ndarray, prob: float) -> np.ndarray:
    """The equal-tailed interval (lower, upper) holding ``prob`` of the draws."""
    edge = (1 - prob) / 2
    return np.quantile(draws, [edge, 1 - edge], axis=None)


def hdi(draws: np.ndarray, prob: float) -> np.ndarray:
    """The narrowest interval (lower, upper) between two draws holding ``prob`` of them."""
    ordered = np.sort(draws.ravel())
    n = ordered.size
    inside = min(int(np.floor(prob * n)), n - 1)
    widths = np.subtract(ordered[inside:], ordered[: n - inside], dtype=np.float64)
    start = np.argmin(widths)
    return ordered[[start, start + inside]]


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain of the (chain, draw) Hamiltonian energies."""
    energy = np.atleast_2d(energy)
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)
