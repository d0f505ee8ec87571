"""Full-information probit ML of the 3-category Holzinger-Swineford CFA: the constants
``FIML_*`` of tests/model/test_ordinal.py.

Theta parameterisation (unit residual variances), std.lv (unit factor variances): 9 loadings,
18 thresholds and 3 factor correlations maximise the likelihood computed by grid quadrature
(:func:`fiml_negloglik`), with scipy's L-BFGS-B started from lavaan's WLSMV estimates. Uses
numpy/scipy only, none of bayes_sor's code, so the slow agreement test compares the posterior
with an independent estimator. Run from the repository root (needs ../shared/reference)::

    python tests/reference_scripts/holzinger_ordinal_fiml.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

LAVAAN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "lavaan"
ITEMS = [f"x{i}" for i in range(1, 10)]
FACTORS = ["visual", "textual", "speed"]
PAIRS = [(0, 1), (0, 2), (1, 2)]


def fiml_negloglik(codes: np.ndarray, lam: np.ndarray, cuts: np.ndarray, cor: np.ndarray) -> float:
    """-log L of a 3-factor, 3-items-per-factor ordinal probit CFA, by grid quadrature.

    ``codes`` (n x 9) categories 0..2, ``lam`` theta-metric loadings, ``cuts`` (9 x 2)
    thresholds, ``cor`` the factor correlation matrix. Each item loads on one factor, so the
    3-dimensional integral factorises into per-factor item likelihoods on a 41-point grid,
    combined with the trivariate normal weights.
    """
    grid = np.linspace(-5, 5, 41)
    per_factor = []
    for f in range(3):
        log_lik = np.zeros((len(codes), len(grid)))
        for j in range(3 * f, 3 * f + 3):
            edges = np.r_[-np.inf, cuts[j], np.inf]
            mu = lam[j] * grid
            upper = stats.norm.cdf(edges[codes[:, j] + 1][:, None] - mu)
            lower = stats.norm.cdf(edges[codes[:, j]][:, None] - mu)
            log_lik += np.log(np.clip(upper - lower, 1e-300, None))
        per_factor.append(np.exp(log_lik))
    points = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    weights = stats.multivariate_normal(np.zeros(3), cor).pdf(points).reshape(41, 41, 41)
    weights *= (grid[1] - grid[0]) ** 3
    likelihood = np.einsum("na,nb,nc,abc->n", *per_factor, weights, optimize=True)
    return float(-np.log(likelihood).sum())


def _unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loadings, thresholds and the correlation matrix; the correlations through an
    unconstrained lower-triangular factor whose rows are normalised, so every x gives a
    positive-definite matrix."""
    lower = np.eye(3)
    lower[[1, 2, 2], [0, 0, 1]] = x[27:]
    lower /= np.linalg.norm(lower, axis=1, keepdims=True)
    return x[:9], x[9:27].reshape(9, 2), lower @ lower.T


def _factor(cor: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_unpack`'s map from x[27:] to the correlation matrix."""
    lower = np.linalg.cholesky(cor)
    return lower[[1, 2, 2], [0, 0, 1]] / np.diag(lower)[[1, 2, 2]]


def fit(codes: np.ndarray, start: np.ndarray) -> optimize.OptimizeResult:
    """Maximise the likelihood from ``start`` (9 loadings, 18 thresholds, 3 correlation
    factors, see :func:`_unpack`)."""
    bounds = [(0.01, 10)] * 9 + [(-6, 6)] * 18 + [(None, None)] * 3
    return optimize.minimize(
        lambda x: fiml_negloglik(codes, *_unpack(x)),
        start,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-6},
    )


def main() -> None:
    data = pd.read_csv(LAVAAN / "holzinger_swineford_1939_ordinal3.csv")
    wlsmv = pd.read_csv(LAVAAN / "ref_holzinger_ordinal3_cfa_lavaan_wlsmv_theta_stdlv.csv")
    wlsmv.index = wlsmv.lhs + wlsmv.op + wlsmv.rhs
    cor = np.eye(3)
    for a, b in PAIRS:
        cor[a, b] = cor[b, a] = wlsmv.est[f"{FACTORS[a]}~~{FACTORS[b]}"]
    start = np.r_[
        [wlsmv.est[f"{FACTORS[j // 3]}=~{item}"] for j, item in enumerate(ITEMS)],
        [wlsmv.est[f"{item}|t{k}"] for item in ITEMS for k in (1, 2)],
        _factor(cor),
    ]
    codes = data[ITEMS].to_numpy() - 1
    result = fit(codes, start)
    lam, _, cor = _unpack(result.x)
    print(f"converged: {result.success} ({result.message})")
    print("FIML_STD_LOADINGS =", np.round(lam / np.sqrt(1 + lam**2), 3).tolist())
    print("FIML_CORRELATIONS =", np.round([cor[a, b] for a, b in PAIRS], 3).tolist())
    print(f"FIML_MINIMUM = {result.fun:.3f}")
    print(f"(WLSMV's estimates: {fiml_negloglik(codes, *_unpack(start)):.3f})")


if __name__ == "__main__":
    main()
