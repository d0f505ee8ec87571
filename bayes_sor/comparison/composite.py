"""The published studies' own approach, reading the same
:class:`~bayes_sor.spec.partable.ParTable` as the Bayesian model: construct scores as item means
(:func:`composite_scores`), OLS (:func:`ols`), Baron-Kenny steps (:func:`baron_kenny`), a
mean-centred product term (:func:`moderation`) and Hayes' PROCESS model 14 with a percentile
bootstrap (:func:`process_model14`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bayes_sor.errors import DataError
from bayes_sor.spec.partable import ParTable


@dataclass(frozen=True)
class OLSFit:
    """An OLS fit: ``table`` indexed by term (``(Intercept)`` first) with columns ``est, se,
    t, pvalue, ci.lower, ci.upper, beta`` (t-based intervals; ``beta`` standardised)."""

    table: pd.DataFrame
    r2: float
    n: int
    df_resid: int

    @property
    def coef(self) -> pd.Series:
        return self.table["est"]


def numeric_items(partable: ParTable, data: pd.DataFrame) -> pd.DataFrame:
    """The model's item columns as numbers (non-numeric answers become missing)."""
    missing = [c for c in partable.indicators if c not in data.columns]
    if missing:
        raise DataError(f"the data lack the model's item column(s) {missing}")
    return data[partable.indicators].apply(pd.to_numeric, errors="coerce")


def items_of(partable: ParTable, latent: str) -> list[str]:
    """The items measuring ``latent``."""
    t = partable.table
    return list(t.rhs[(t.op == "=~") & (t.lhs == latent)])


def composite_scores(partable: ParTable, data: pd.DataFrame) -> pd.DataFrame:
    """Construct scores as the published studies compute them: the mean of each latent's items.

    Rows with a missing item get the mean of the items answered (SPSS ``MEAN()``).
    """
    items = numeric_items(partable, data)
    return pd.DataFrame({f: items[items_of(partable, f)].mean(axis=1) for f in partable.latents})


def ols(y: pd.Series, X: pd.DataFrame, level: float = 0.95) -> OLSFit:
    """OLS of ``y`` on the columns of ``X`` plus an intercept (complete cases)."""
    frame = pd.concat([y.rename("__y__"), X], axis=1).apply(pd.to_numeric, errors="coerce")
    frame = frame.dropna()
    n, k = len(frame), X.shape[1] + 1
    if n <= k:
        raise DataError(f"{n} complete rows for {k} coefficients: too few for OLS")
    design = np.column_stack([np.ones(n), frame[X.columns].to_numpy(dtype=float)])
    target = frame["__y__"].to_numpy(dtype=float)
    if np.linalg.matrix_rank(design) < k:
        raise DataError(f"the predictors {list(X.columns)} are collinear; drop one of them")
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    df = n - k
    se = np.sqrt(np.diag(np.linalg.inv(design.T @ design)) * (resid @ resid) / df)
    t = coef / se
    crit = stats.t.ppf(0.5 + level / 2, df)
    sd = design.std(axis=0, ddof=1)
    table = pd.DataFrame(
        {
            "est": coef,
            "se": se,
            "t": t,
            "pvalue": 2 * stats.t.sf(np.abs(t), df),
            "ci.lower": coef - crit * se,
            "ci.upper": coef + crit * se,
            "beta": np.r_[np.nan, coef[1:] * sd[1:] / target.std(ddof=1)],
        },
        index=pd.Index(["(Intercept)", *X.columns], name="term"),
    )
    r2 = 1.0 - (resid @ resid) / np.sum((target - target.mean()) ** 2)
    return OLSFit(table, float(r2), n, df)


def baron_kenny(
    scores: pd.DataFrame, x: str, m: str, y: str, controls: Sequence[str] = ()
) -> pd.DataFrame:
    """Baron & Kenny's steps on composites: c (Y ~ X), a (M ~ X), b and c' (Y ~ X + M).

    Plus the product ``a*b`` with the Sobel (first-order delta) standard error, the indirect
    effect the steps imply but never test.
    """
    controls = list(controls)
    fits = {
        "c": (ols(scores[y], scores[[x, *controls]]), x, y),
        "a": (ols(scores[m], scores[[x, *controls]]), x, m),
    }
    both = ols(scores[y], scores[[x, m, *controls]])
    fits["b"] = (both, m, y)
    fits["c'"] = (both, x, y)
    rows = [
        {"path": path, "outcome": out, "predictor": pred, **fit.table.loc[pred].to_dict()}
        for path, (fit, pred, out) in fits.items()
    ]
    a, b = rows[1], rows[2]
    ab, ab_se = a["est"] * b["est"], np.hypot(a["est"] * b["se"], b["est"] * a["se"])
    z_crit = stats.norm.ppf(0.975)
    rows.append(
        {
            "path": "a*b",
            "outcome": y,
            "predictor": x,
            "est": ab,
            "se": ab_se,
            "t": ab / ab_se,
            "pvalue": 2 * stats.norm.sf(abs(ab / ab_se)),
            "ci.lower": ab - z_crit * ab_se,
            "ci.upper": ab + z_crit * ab_se,
            "beta": a["beta"] * b["beta"],
        }
    )
    return pd.DataFrame(rows)


def moderation(
    scores: pd.DataFrame, x: str, w: str, y: str, controls: Sequence[str] = ()
) -> OLSFit:
    """Y on mean-centred X, W and their product (term ``x:w``) plus controls, as published."""
    xc, wc = scores[x] - scores[x].mean(), scores[w] - scores[w].mean()
    design = pd.concat([xc, wc, (xc * wc).rename(f"{x}:{w}"), scores[list(controls)]], axis=1)
    return ols(scores[y], design)


def moderator_points(w: pd.Series) -> np.ndarray:
    """PROCESS's default probe values of a continuous moderator: its 16th/50th/84th percentiles
    with SPSS's (n + 1) p definition (reproduces Hayes' -0.531 / -0.060 / 0.600 for teams)."""
    return np.percentile(w.dropna().to_numpy(dtype=float), [16, 50, 84], method="weibull")


def _batched_ols(design: np.ndarray, target: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """OLS coefficients for every bootstrap resample of rows ``idx`` (B, n) at once."""
    xb, yb = design[idx], target[idx]
    xtx = np.einsum("bni,bnj->bij", xb, xb)
    xty = np.einsum("bni,bn->bi", xb, yb)
    # pinv: a degenerate resample yields a (useless but finite) solution instead of an error.
    return np.einsum("bij,bj->bi", np.linalg.pinv(xtx), xty)


def process_model14(
    scores: pd.DataFrame,
    x: str,
    m: str,
    w: str,
    y: str,
    controls: Sequence[str] = (),
    boot: int = 5000,
    seed: int = 0,
    w_values: Sequence[float] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Hayes' PROCESS model 14: moderated mediation with W moderating the b path.

    M ~ X (+ controls); Y ~ X + M + W + M:W (+ controls), uncentred as PROCESS by default.
    Conditional indirect effects a (b1 + b3 w) at ``w_values`` (default
    :func:`moderator_points`), the index of moderated mediation a b3, with percentile
    intervals from ``boot`` row resamples (``numpy.random.default_rng(seed)``); ``se`` of the
    bootstrap rows is the bootstrap SD. Rows are named as in the PROCESS reference table.
    """
    controls = list(controls)
    frame = scores[[x, m, w, y, *controls]].apply(pd.to_numeric, errors="coerce").dropna()
    frame = frame.reset_index(drop=True)
    product = f"{m}:{w}"
    frame[product] = frame[m] * frame[w]
    path_a = ols(frame[m], frame[[x, *controls]], level)
    path_b = ols(frame[y], frame[[x, m, w, product, *controls]], level)
    points = np.asarray(moderator_points(frame[w]) if w_values is None else w_values, float)

    def effects(a: np.ndarray, b1: np.ndarray, b3: np.ndarray) -> np.ndarray:
        return np.column_stack([a[:, None] * (b1[:, None] + b3[:, None] * points), a * b3])

    est = effects(
        *(np.array([fit.coef[term]]) for fit, term in ((path_a, x), (path_b, m), (path_b, product)))
    )[0]
    idx = np.random.default_rng(seed).integers(0, len(frame), size=(boot, len(frame)))
    a_draws = _batched_ols(_design(frame, [x, *controls]), frame[m].to_numpy(float), idx)
    b_draws = _batched_ols(
        _design(frame, [x, m, w, product, *controls]), frame[y].to_numpy(float), idx
    )
    draws = effects(a_draws[:, 1], b_draws[:, 2], b_draws[:, 4])
    alpha = (1 - level) / 2
    lower, upper = np.quantile(draws, [alpha, 1 - alpha], axis=0)
    boot_method = f"percentile bootstrap, B={boot}, numpy seed {seed}"
    rows = [*_ols_rows(m, path_a), *_ols_rows(y, path_b)]
    names = [f"cond_ind_W{round(v, 3):g}" for v in points] + ["index_modmed"]
    for k, name in enumerate(names):
        rows.append(
            {
                "effect": name,
                "estimate": est[k],
                "se": draws[:, k].std(ddof=1),
                "ci_lower": lower[k],
                "ci_upper": upper[k],
                "method": boot_method,
                "w": points[k] if k < len(points) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _design(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return np.column_stack([np.ones(len(frame)), frame[columns].to_numpy(dtype=float)])


def _ols_rows(outcome: str, fit: OLSFit) -> list[dict]:
    rows = [
        {
            "effect": f"{outcome}: {term}",
            "estimate": r["est"],
            "se": r["se"],
            "ci_lower": r["ci.lower"],
            "ci_upper": r["ci.upper"],
            "method": "OLS (t-based CI)",
            "w": np.nan,
        }
        for term, r in fit.table.iterrows()
    ]
    rows.append(
        {
            "effect": f"{outcome}: R2",
            "estimate": fit.r2,
            "se": np.nan,
            "ci_lower": np.nan,
            "ci_upper": np.nan,
            "method": "OLS",
            "w": np.nan,
        }
    )
    return rows
