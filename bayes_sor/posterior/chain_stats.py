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
test_chain_stats.py`` compares them with arviz-stats'). They take a whole posterior at once,
``(entry, chain, draw)``: one call per parameter, and a normal quantile per draw, cost a third
of the summaries' time (``benchmarks/RESULTS.md``, "fixed costs after sampling, second pass").
The references are Vehtari et al. (2021), "Rank-normalization, folding, and localization: an
improved R-hat", and Betancourt (2016) for the E-BFMI.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

#: arviz-stats' default interval probability (``rcParams["stats.ci_prob"]``), which its tail
#: ESS takes as the pair of quantiles (0.11, 0.89) whose ESS it reports (the smaller)
TAIL_ESS_PROB = 0.89
#: Blom's offset of the rank-normal transformation
_BLOM = 3 / 8


def _invalid(draws: np.ndarray, min_chains: int) -> np.ndarray:
    """arviz-stats' ``not_valid`` of each (chain, draw) entry of ``(..., chain, draw)`` draws: a
    NaN, fewer than 4 draws or too few chains."""
    n_chain, n_draw = draws.shape[-2:]
    return np.isnan(draws).any(axis=(-2, -1)) | (n_draw < 4) | (n_chain < min_chains)


def _split_chains(draws: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as chains of their own (an odd middle draw dropped)."""
    half = draws.shape[-1] // 2
    return np.concatenate((draws[..., :half], draws[..., -half:]), axis=-2)


def _z_scale(values: np.ndarray) -> np.ndarray:
    """Rank-normalised values of each entry of ``(..., chain, draw)`` values: normal quantiles
    of the Blom positions of their ranks 1..n among the entry's values, ties given their
    average rank (``scipy.stats.rankdata(method="average")``)."""
    flat = _flat(values)
    n = flat.shape[-1]
    # any sort order will do (tied values share their average rank): numpy's fastest sort
    order = np.argsort(flat, axis=-1)
    ordered = np.take_along_axis(flat, order, axis=-1)
    differs = ordered[..., 1:] != ordered[..., :-1]
    edge = np.ones((*flat.shape[:-1], 1), dtype=bool)
    first = np.concatenate((edge, differs), axis=-1)  # a tie group starts here (sorted order)
    last = np.concatenate((differs, edge), axis=-1)
    position = np.arange(n)
    start = np.maximum.accumulate(np.where(first, position, 0), axis=-1)
    stop = np.flip(np.minimum.accumulate(np.flip(np.where(last, position + 1, n), -1), -1), -1)
    # an average rank is a whole or half number, (start + stop + 1) / 2: the normal quantile
    # of each of the 2n - 1 possible ranks once, rather than of every value of every entry
    ranks = 0.5 * np.arange(2, 2 * n + 1)
    quantiles = ndtri((ranks - _BLOM) / (n - 2 * _BLOM + 1))
    z = np.empty(flat.shape)
    np.put_along_axis(z, order, quantiles[start + stop - 1], axis=-1)
    return z.reshape(values.shape)


def _rhat(chains: np.ndarray) -> np.ndarray:
    """The potential scale reduction of each entry's chains (rows)."""
    n_draw = chains.shape[-1]
    between = n_draw * np.var(np.mean(chains, axis=-1), axis=-1, ddof=1)
    within = np.mean(np.var(chains, axis=-1, ddof=1), axis=-1)
    return np.sqrt((between / within + n_draw - 1) / n_draw)


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
    n = chains.shape[-1]
    m = _next_regular(2 * n)
    centred = chains - chains.mean(-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=-1)
    spectrum *= np.conjugate(spectrum)
    cov = np.fft.irfft(spectrum, n=m, axis=-1)[..., :n]
    cov /= n
    return cov


def _ess(chains: np.ndarray) -> np.ndarray:
    """The effective sample size of each entry's chains (rows), with Geyer's initial monotone
    sequence."""
    chains = np.asarray(chains, dtype=float)
    n_chain, n_draw = chains.shape[-2:]
    acov = _autocov(chains)
    # the chains' mean autocovariance at each lag, each mean over a contiguous row (the
    # summation order of the mean over one lag's column)
    lag_mean = np.mean(np.swapaxes(acov, -1, -2).copy(), axis=-1)
    mean_var = lag_mean[..., 0] * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(chains.mean(axis=-1), axis=-1, ddof=1)
    spread = np.max(chains, axis=(-2, -1)) - np.min(chains, axis=(-2, -1))
    constant = spread < np.finfo(float).resolution
    ess = np.empty(chains.shape[:-2])
    for at in np.ndindex(ess.shape):
        ess[at] = (
            float(n_chain * n_draw)
            if constant[at]
            else _geyer_ess(lag_mean[at], mean_var[at], var_plus[at], n_chain * n_draw)
        )
    return ess


def _geyer_ess(lag_mean: np.ndarray, mean_var: float, var_plus: float, size: int) -> float:
    """The ESS of ``size`` draws from the chains' mean autocovariance at each lag: the
    autocorrelations summed up to Geyer's initial positive sequence, made monotone."""
    n_draw = lag_mean.size
    rho = np.zeros(n_draw)
    rho_even = 1.0
    rho[0] = rho_even
    rho_odd = 1.0 - (mean_var - lag_mean[1]) / var_plus
    rho[1] = rho_odd
    # Geyer's initial positive sequence
    t = 1
    while t < (n_draw - 3) and (rho_even + rho_odd) > 0.0:
        rho_even = 1.0 - (mean_var - lag_mean[t + 1]) / var_plus
        rho_odd = 1.0 - (mean_var - lag_mean[t + 2]) / var_plus
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
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1 : max_t + 2])
    tau = max(tau, 1 / np.log10(size))
    return np.nan if np.isnan(rho).any() else size / tau


def convergence(draws: np.ndarray) -> np.ndarray:
    """(R-hat, bulk ESS, tail ESS) of each (chain, draw) entry of ``(..., chain, draw)`` draws,
    in a last axis of 3; all entries at once (a few array operations for a whole posterior
    rather than for each parameter), the split chains rank-normalised once for both of the
    first two. R-hat: the rank-normalised split R-hat, the larger of the bulk's and the folded
    tails' (NaN with one chain); bulk ESS: the ESS of the rank-normalised split chains; tail
    ESS: :func:`ess_tail`. NaN with a NaN or fewer than 4 draws."""
    draws = np.asarray(draws, dtype=float)
    result = np.full((*draws.shape[:-2], 3), np.nan)
    valid = ~_invalid(draws, min_chains=1)
    draws = draws[valid]  # (entry, chain, draw)
    split = _split_chains(draws)
    bulk = _z_scale(split)
    if draws.shape[-2] >= 2:
        median = np.median(_flat(split), axis=-1)[:, None, None]
        bulk_rhat, tails_rhat = _rhat(bulk), _rhat(_z_scale(abs(split - median)))
        # Python's max(bulk, tails), as arviz-stats takes it: a NaN of the tails' is ignored
        result[valid, 0] = np.where(tails_rhat > bulk_rhat, tails_rhat, bulk_rhat)
    result[valid, 1] = _ess(bulk)
    result[valid, 2] = _ess_tail(draws)
    return result


def _flat(draws: np.ndarray) -> np.ndarray:
    """Each entry's (chain, draw) values in one row."""
    return draws.reshape(*draws.shape[:-2], draws.shape[-2] * draws.shape[-1])


def _ess_tail(draws: np.ndarray, prob: float = TAIL_ESS_PROB) -> np.ndarray:
    """Tail ESS of each valid (chain, draw) entry of ``(..., chain, draw)`` draws: the smaller
    ESS of the indicators of lying below the quantiles ``1 - prob`` and ``prob``."""
    low, high = (
        _ess(_split_chains(draws <= np.quantile(_flat(draws), q, axis=-1)[..., None, None]))
        for q in sorted((prob, 1 - prob))
    )
    return np.where(high < low, high, low)  # Python's min(low, high), as arviz-stats takes it


def eti(draws: np.ndarray, prob: float) -> np.ndarray:
    """The equal-tailed interval (lower, upper) holding ``prob`` of the draws of each
    (chain, draw) entry of ``(..., chain, draw)`` draws, in a last axis of 2."""
    edge = (1 - prob) / 2
    return np.moveaxis(np.quantile(_flat(draws), [edge, 1 - edge], axis=-1), 0, -1)


def hdi(draws: np.ndarray, prob: float) -> np.ndarray:
    """The narrowest interval (lower, upper) between two draws holding ``prob`` of them, of
    each (chain, draw) entry of ``(..., chain, draw)`` draws, in a last axis of 2."""
    ordered = np.sort(_flat(draws), axis=-1)
    n = ordered.shape[-1]
    inside = min(int(np.floor(prob * n)), n - 1)
    widths = np.subtract(ordered[..., inside:], ordered[..., : n - inside], dtype=np.float64)
    start = np.argmin(widths, axis=-1)[..., None]
    return np.take_along_axis(ordered, np.concatenate((start, start + inside), axis=-1), -1)


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain of the (chain, draw) Hamiltonian energies."""
    energy = np.atleast_2d(energy)
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)
