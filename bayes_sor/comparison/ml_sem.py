"""Maximum-likelihood SEM of the same parameter table the Bayesian model is built from (semopy), so
that names agree everywhere.

:func:`ml_sem` reports like lavaan's ``parameterEstimates()``: Wald intervals for parameters,
delta-method or percentile-bootstrap intervals for specific indirect effects and ``:=``
quantities. semopy has no latent product terms, so ``Y ~ M:W`` becomes a latent measured by
double-mean-centred product indicators (Lin, Wen, Marsh & Lin 2010). Observed variables of the
structural model (PROCESS-style models) enter semopy as the observed variables they are, and a
product of two of them is one more observed (mean-centred) variable. The studies' own approach
(composites and OLS) is :mod:`bayes_sor.comparison.composite`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import semopy
from scipy import stats

from bayes_sor.comparison.composite import items_of, numeric_items
from bayes_sor.errors import DataError, ModelSpecError
from bayes_sor.posterior.effects import effect_draws
from bayes_sor.posterior.estimates import standardized_draws
from bayes_sor.spec.matrices import Representation, extend, implied_moments, representation
from bayes_sor.spec.partable import ParTable, build_partable, row_name
from bayes_sor.spec.syntax import ModelSpec, Statement

ESTIMATE_COLUMNS = [
    "lhs",
    "op",
    "rhs",
    "label",
    "est",
    "se",
    "z",
    "pvalue",
    "ci.lower",
    "ci.upper",
    "std.all",
    "method",
]
ML_METHOD = "ML (semopy; normal likelihood, expected information)"
DMC_METHOD = (
    "ML (semopy) with the latent interaction as double-mean-centred product "
    "indicators (Lin et al. 2010)"
)
PRODUCT_METHOD = f"{ML_METHOD}; a product of observed variables as their centred product"
#: The effect kinds of :func:`bayes_sor.posterior.effects.effect_draws` that get rows in the ML
#: table (direct effects are the regression rows themselves).
EFFECT_KINDS = {
    "indirect": "indirect",
    "total_indirect": "total_indirect",
    "total": "total",
    "defined": ":=",
}
#: BFGS first: from a good start (every bootstrap resample starts at the full-sample estimates)
#: it is about 20 times faster than semopy's default SLSQP, and reaches lavaan's optimum to
#: about 1e-5; SLSQP (whose default tolerance stops about 1e-3 short) is the fallback.
_SOLVERS = (
    {"solver": "BFGS", "options": {"gtol": 1e-6, "maxiter": 10000}},
    {"solver": "SLSQP", "options": {"ftol": 1e-12, "maxiter": 10000}},
)
_GRAD_TOL = 1e-4
_COVARIANCE_OPS = ("=~", "~", "~~")


@dataclass(frozen=True)
class _Layout:
    """How the ParTable's parameter rows map to semopy's parameters and the item means.

    ``theta`` (the free-parameter vector used for the delta method and the bootstrap) is
    semopy's free parameters followed by the item means (lavaan's saturated mean structure:
    intercepts are the sample means, independent of the covariance structure).
    """

    description: str
    variables: dict[str, str]
    items: list[str]
    first_items: dict[str, str]
    n_cov: int
    fixed: np.ndarray
    source: np.ndarray
    measured: np.ndarray
    products: tuple[tuple[int, int, int], ...] = ()

    def rows(self, theta: np.ndarray) -> np.ndarray:
        """Parameter-row values (..., n_par) from free parameters (..., n_theta)."""
        return np.where(self.source >= 0, extend(theta)[..., self.source], self.fixed)


def _layout(partable: ParTable, products: list[tuple[str, str, str]]) -> _Layout:
    """``products``: (product indicator, first item, second item) of a rewritten model."""
    params = partable.parameters.reset_index(drop=True)
    # semopy's parser accepts only word-like names, so every variable gets a neutral alias.
    variables = {v: f"v{i}" for i, v in enumerate([*partable.latents, *partable.indicators])}
    cov_free = sorted({int(f) for f in params.free[params.op.isin(_COVARIANCE_OPS)] if f > 0})
    position = {f: k for k, f in enumerate(cov_free)}
    observed = set(partable.observed_structural)
    lines: list[str] = []
    source = np.full(len(params), -1)
    for k, r in enumerate(params.itertuples()):
        if r.op == "=~" and r.lhs in observed:
            # the table's single-indicator row 'v =~ 1*v' (zero residual variance) stands for
            # an observed variable, which semopy takes as it is
            continue
        if r.op in _COVARIANCE_OPS:
            # Every free parameter is named after its free number, so labels shared by several
            # rows (equality constraints) share one semopy parameter, and every fixed value is
            # explicit, so semopy adds no scaling of its own (std.lv frees all loadings).
            mult = f"p{r.free}" if r.free else repr(float(r.value))
            lines.append(f"{variables[r.lhs]} {r.op} {mult}*{variables[r.rhs]}")
            source[k] = position[r.free] if r.free else -1
        elif r.op == "~1":
            source[k] = len(cov_free) + partable.indicators.index(r.lhs)
    fixed = np.where(params.free.to_numpy() > 0, np.nan, params.value.to_numpy(dtype=float))
    items = [variables[v] for v in partable.indicators]
    first = {
        variables[f]: variables[items_of(partable, f)[0]]
        for f in partable.latents
        if f not in observed
    }
    position = {v: i for i, v in enumerate(partable.indicators)}
    index = tuple((position[n], position[a], position[b]) for n, a, b in products)
    measured = np.array(
        [k for k, v in enumerate(partable.indicators) if v not in observed], dtype=int
    )
    return _Layout(
        "\n".join(lines), variables, items, first, len(cov_free), fixed, source, measured, index
    )


def _check_ml(partable: ParTable) -> None:
    t = partable.table
    if partable.ordinal_items():
        raise ModelSpecError(
            "ml_sem fits continuous items; the model declares ordinal items: build the "
            "parameter table without 'ordinal' for the ML comparison"
        )
    means = t[t.op == "~1"]
    if (
        (means.free == 0).any()
        or means.free.duplicated().any()
        or not means.lhs.isin(partable.indicators).all()
    ):
        raise ModelSpecError(
            "ml_sem estimates unrestricted item intercepts (the sample means); remove the "
            "fixed, shared or latent intercepts from the model for the ML comparison"
        )


class _DropSemopyWarnings(logging.Filter):
    """semopy logs to the root logger; its convergence notes are recorded in our output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "semopy" not in record.pathname


@contextmanager
def _quiet_semopy() -> Iterator[None]:
    flt = _DropSemopyWarnings()
    logging.root.addFilter(flt)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.root.removeFilter(flt)


class _Semopy:
    """A semopy model whose free parameters are read and written in the ParTable's order.

    semopy orders its parameters by operator and first appearance; ours are named ``p<free>``,
    so ``order`` (the argsort of those numbers) translates between the two orders.
    """

    def __init__(self, layout: _Layout) -> None:
        # cov_diag: no covariances beyond the ParTable's own rows.
        self.model = semopy.Model(layout.description, cov_diag=True)
        for latent, item in layout.first_items.items():
            # semopy's starting values regress items on a fixed-loading item; without one
            # (std.lv) its lookup loops forever, so name the first item explicitly.
            if self.model.first_manifs[latent] is None:
                self.model.first_manifs[latent] = item
        for param in self.model.parameters.values():
            # lavaan does not bound variances; keeping negative estimates visible is what lets
            # the bootstrap count inadmissible solutions the way lavaan does.
            param.bound = (None, None)
        active = [name for name, p in self.model.parameters.items() if p.active]
        if len(active) != layout.n_cov or any(not n.startswith("p") for n in active):
            raise ModelSpecError(
                f"semopy parametrised the model with {len(active)} free parameters instead of "
                f"the parameter table's {layout.n_cov}; the model is outside what ml_sem "
                "translates"
            )
        self.order = np.argsort([int(n[1:]) for n in active])
        self.objective = np.nan

    def fit(self, data: pd.DataFrame, start: np.ndarray | None = None) -> np.ndarray:
        """Free parameters at the optimum, in ParTable order (NaN when the optimiser fails)."""
        try:
            # load() computes the covariance matrix and, the first time, semopy's own start.
            self.model.load(data)
            if start is None:
                initial = self.model.param_vals.copy()
            else:
                initial = np.empty(len(start))
                initial[self.order] = start
            for solver in _SOLVERS:
                self.model.param_vals = initial.copy()
                result = self.model.fit(obj="MLW", **solver)
                if self._converged(result):
                    # semopy's MLW is lavaan's F_ML: its covariance matrix has divisor N.
                    self.objective = float(result.fun)
                    return np.asarray(result.x, dtype=float)[self.order]
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            pass
        return np.full(len(self.order), np.nan)

    def _converged(self, result) -> bool:
        if not np.isfinite(result.fun):
            return False
        # BFGS reports "precision loss" near an optimum it cannot improve further; the
        # gradient tells whether that point is one.
        return bool(result.success or np.abs(self.model.grad_mlw(result.x)).max() < _GRAD_TOL)

    def vcov(self) -> np.ndarray:
        """Inverse expected information (semopy uses N), in ParTable order."""
        _, fim_inv = self.model.calc_fim(inverse=True)
        return fim_inv[np.ix_(self.order, self.order)]

    def sigma(self, variables: list[str]) -> np.ndarray:
        """Model-implied covariance of ``variables`` (semopy names) at the last fit."""
        sigma, _ = self.model.calc_sigma()
        index = [self.model.vars["observed"].index(v) for v in variables]
        return sigma[np.ix_(index, index)]


def _item_data(partable: ParTable, data: pd.DataFrame) -> pd.DataFrame:
    # Listwise deletion, as lavaan's default.
    items = numeric_items(partable, data).dropna().reset_index(drop=True)
    if len(items) <= len(partable.indicators):
        raise DataError(
            f"{len(items)} complete rows for {len(partable.indicators)} items: too few for ML"
        )
    return items


# ---- latent interactions -> product indicators ----------------------------------------------
def _product_name(first: str, second: str) -> str:
    return f"{first}.{second}"


def product_indicator_model(
    partable: ParTable, data: pd.DataFrame
) -> tuple[ParTable, pd.DataFrame]:
    """Rewrite ``Y ~ M:W`` into a product-indicator latent ``M.W`` (Lin et al. 2010).

    Matched pairs: the i-th indicator of M times the i-th of W (as many pairs as the shorter
    list; an observed M or W, its own single indicator, pairs with every indicator of the
    other), each indicator mean-centred before and each product mean-centred after
    multiplying (double mean centring, so no mean structure is needed). The product latent's
    covariances with M and W are fixed to 0 (zero under normality); with other exogenous
    latents they are free. When M and W are both observed the product is observed too: one
    column ``M.W``, the mean-centred product, with free covariances like any observed
    predictor (ML then gives the OLS paths of a regression on the centred product, as
    PROCESS). Models without interactions are returned unchanged.
    """
    if not partable.interactions:
        return partable, data
    statements = _user_statements(partable)
    data = data.copy()
    for (first, second), products in _product_pairs(partable).items():
        latent = _product_name(first, second)
        clash = sorted({latent, *(n for n, _, _ in products)} & set(data.columns))
        if clash:
            raise ModelSpecError(
                f"the product-indicator names {clash} are already used; rename those variables"
            )
        for name, a, b in products:
            data[name] = _double_centred(data[a].to_numpy(float), data[b].to_numpy(float))
        statements = [_with_product(s, first, second, latent) for s in statements]
        if _observed_product(partable, first, second):
            continue
        statements += [Statement(latent, "=~", name, 0) for name, _, _ in products]
        statements += [Statement(v, "~~", latent, 0, fixed=0.0) for v in (first, second)]
    spec = ModelSpec(statements, dict(partable.options), list(partable.hypotheses), "")
    return build_partable(spec, identification=partable.options.get("identification")), data


def _product_pairs(partable: ParTable) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(M, W) -> matched pairs (product indicator, item of M, item of W) of each interaction.

    Two observed variables give the single product column ``M.W``, the product's own name.
    """
    out = {}
    observed = set(partable.observed_structural)
    for first, second in dict.fromkeys((m, w) for _, m, w in partable.interactions):
        if _observed_product(partable, first, second):
            out[first, second] = [(_product_name(first, second), first, second)]
            continue
        a_items, b_items = items_of(partable, first), items_of(partable, second)
        if first in observed:
            a_items = a_items * len(b_items)
        if second in observed:
            b_items = b_items * len(a_items)
        pairs = zip(a_items, b_items, strict=False)
        out[first, second] = [(_product_name(a, b), a, b) for a, b in pairs]
    return out


def _observed_product(partable: ParTable, first: str, second: str) -> bool:
    """Whether ``first:second`` is a product of two observed variables (no latent needed)."""
    return {first, second} <= set(partable.observed_structural)


def _double_centred(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    product = (a - a.mean(axis=0)) * (b - b.mean(axis=0))
    return product - product.mean(axis=0)


def _user_statements(partable: ParTable) -> list[Statement]:
    """The user's rows as statements (the marker scaling applied by the builder included)."""
    out = []
    for r in partable.table[partable.table.user == 1].itertuples():
        fixed = None if r.op == ":=" or r.free else float(r.value)
        out.append(Statement(r.lhs, r.op, r.rhs, int(r.line), label=r.label, fixed=fixed))
    return out


def _with_product(s: Statement, first: str, second: str, latent: str) -> Statement:
    return replace(s, rhs=latent) if s.op == "~" and s.rhs == f"{first}:{second}" else s


def _restore_interaction_names(table: pd.DataFrame, partable: ParTable) -> pd.DataFrame:
    """Report the product latent ``M.W`` under the original term name ``M:W``."""
    names = {_product_name(m, w): f"{m}:{w}" for _, m, w in partable.interactions}
    if names:
        table["rhs"] = table["rhs"].replace(names)
        # lhs also holds effect paths such as 'HED.CON -> URG'.
        table["lhs"] = [
            " -> ".join(names.get(part, part) for part in lhs.split(" -> ")) for lhs in table["lhs"]
        ]
    return table


# ---- estimates, standard errors and effects -------------------------------------------------
def _effects(partable: ParTable, rep: Representation, rows: np.ndarray) -> tuple[list, np.ndarray]:
    """Effect rows (lhs, op, rhs, label) and their values (..., n_effects) from parameter rows."""
    wanted = [e for e in effect_draws(partable, rep, rows) if e.kind in EFFECT_KINDS]
    rhs = dict(zip(partable.defined.lhs, partable.defined.rhs, strict=True))
    keys = [
        (
            e.effect,
            EFFECT_KINDS[e.kind],
            rhs.get(e.effect, "") if e.kind == "defined" else "",
            e.effect if e.kind == "defined" else "",
        )
        for e in wanted
    ]
    if not wanted:
        return [], np.zeros((*rows.shape[:-1], 0))
    values = np.stack([e.draws for e in wanted], axis=-1)
    return keys, values


def _jacobian(fun, theta: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vectorised ``fun`` ((..., n_theta) -> (..., k))."""
    h = 1e-6 * np.maximum(1.0, np.abs(theta))
    eye = np.diag(h)
    values = fun(np.concatenate([theta + eye, theta - eye]))
    n = len(theta)
    return ((values[:n] - values[n:]) / (2 * h[:, None])).T


def _theta_covariance(fitted: _Semopy, sigma: np.ndarray, n: int) -> np.ndarray:
    """Sampling covariance of (covariance-structure parameters, item means)."""
    structure = fitted.vcov()
    k, p = len(structure), len(sigma)
    cov = np.zeros((k + p, k + p))
    cov[:k, :k] = structure
    # With unrestricted means, ML means are the sample means, independent of the covariance
    # structure, with sampling covariance Sigma / N.
    cov[k:, k:] = sigma / n
    return cov


def _wald_table(est: np.ndarray, se: np.ndarray, level: float) -> dict[str, np.ndarray]:
    z_crit = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, est / se, np.nan)
    return {
        "est": est,
        "se": se,
        "z": z,
        "pvalue": 2 * stats.norm.sf(np.abs(z)),
        "ci.lower": np.where(se > 0, est - z_crit * se, est),
        "ci.upper": np.where(se > 0, est + z_crit * se, est),
    }


def _fit_measures(s: np.ndarray, fun: float, n: int, n_free: int) -> dict[str, float]:
    """chi-square (N F_ML, lavaan's convention), CFI and RMSEA from the sample covariance."""
    p = len(s)
    chisq = n * fun
    df = p * (p + 1) // 2 - n_free
    base_chisq = n * (np.sum(np.log(np.diag(s))) - np.linalg.slogdet(s)[1])
    base_df = p * (p - 1) // 2
    denom = max(chisq - df, base_chisq - base_df, 0.0)
    return {
        "ntotal": n,
        "npar": n_free,
        "chisq": chisq,
        "df": df,
        "pvalue": float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan,
        "cfi": 1.0 - max(chisq - df, 0.0) / denom if denom > 0 else 1.0,
        "rmsea": float(np.sqrt(max(chisq - df, 0.0) / (df * n))) if df > 0 else 0.0,
    }


def _fit_sample(layout: _Layout, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """ML estimates (free parameters, then item means), their covariance and fit measures."""
    with _quiet_semopy():
        fitted = _Semopy(layout)
        theta_cov = fitted.fit(pd.DataFrame(data, columns=layout.items))
        if not np.isfinite(theta_cov).all():
            raise ModelSpecError(
                "the ML optimiser did not converge for this model and data (a Heywood case or "
                "an empirically unidentified model?)"
            )
        sigma = fitted.sigma(layout.items)
        vcov = _theta_covariance(fitted, sigma, len(data))
        fit = _fit_measures(fitted.model.mx_cov, fitted.objective, len(data), layout.n_cov)
    return np.concatenate([theta_cov, data.mean(axis=0)]), vcov, fit


@dataclass(frozen=True)
class MLFit:
    """:func:`ml_sem_fit`'s result: the table plus the parameter rows behind it.

    ``rows`` are the parameter rows of ``fitted`` (the model as semopy fitted it: latent
    interactions as product-indicator latents) at the ML estimates, ``boot_rows`` those of
    every kept bootstrap resample (None without bootstrap).
    """

    table: pd.DataFrame
    model: ParTable
    fitted: ParTable
    rows: np.ndarray
    boot_rows: np.ndarray | None

    def model_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows (..., n_fitted) -> parameter rows of ``model`` (..., n_model).

        A product latent ``M.W`` has its own scale (its first loading or its variance fixed),
        so its coefficient is rescaled to the scale of the product M x W, whose variance is
        Var(M) Var(W) + Cov(M, W)^2 under normality: then ``Y ~ M:W`` means what it means in
        the Bayesian model (the change in M's slope per unit of W).
        """
        position = {name: k for k, name in enumerate(self.fitted.names)}
        names = {f"{m}:{w}": _product_name(m, w) for _, m, w in self.model.interactions}
        index = [
            position[row_name(r.lhs, r.op, names.get(r.rhs, r.rhs))]
            for r in self.model.parameters.itertuples()
        ]
        out = rows[..., index]
        rep = representation(self.model)
        if rep.interactions:
            product_var = implied_moments(rep, out).product_var
            for k, t in enumerate(rep.interactions):
                first, second = rep.latents[t.first], rep.latents[t.second]
                if _observed_product(self.model, first, second):
                    continue  # an observed product column is the product M x W itself
                latent = _product_name(first, second)
                own_var = rows[..., position[f"{latent}~~{latent}"]]
                out[..., t.param] *= np.sqrt(own_var / product_var[..., k])
        return out


def ml_sem(
    partable: ParTable,
    data: pd.DataFrame,
    bootstrap: int = 0,
    seed: int = 0,
    workers: int = 1,
    level: float = 0.95,
) -> pd.DataFrame:
    """ML SEM of the ParTable's model with semopy: a lavaan ``parameterEstimates()``-like table.

    One row per parameter row of the (rewritten, if it has latent interactions) ParTable, in
    its own identification, then one per specific indirect effect (``op == "indirect"``, the
    product of the paths along it), total indirect and total effect, and ``:=`` quantity.
    Item intercepts are the sample means (saturated mean structure). Intervals are Wald
    (delta method for effects); with ``bootstrap=B > 0`` every row gets the bootstrap SD as
    ``se`` and percentile intervals from B nonparametric resamples drawn with
    ``numpy.random.default_rng(seed)`` and fitted in ``workers`` processes (results do not
    depend on ``workers``). As lavaan does, inadmissible resamples (negative variances,
    non-positive-definite covariance matrices) are kept and counted; failed ones are dropped.
    ``table.attrs``: ``method``, ``fit`` (chi-square, df, CFI, RMSEA; ``npar`` counts the
    covariance structure), ``ci`` and, with bootstrap, ``bootstrap`` (``B``, ``failed``,
    ``inadmissible``, ``kept``).
    """
    return ml_sem_fit(partable, data, bootstrap, seed, workers, level).table


def ml_sem_fit(
    partable: ParTable,
    data: pd.DataFrame,
    bootstrap: int = 0,
    seed: int = 0,
    workers: int = 1,
    level: float = 0.95,
) -> MLFit:
    """:func:`ml_sem`, keeping the parameter rows of the estimates and resamples."""
    _check_ml(partable)
    original = partable
    items = _item_data(partable, data)
    partable, items = product_indicator_model(partable, items)
    method = ML_METHOD
    if original.interactions:
        observed = all(_observed_product(original, m, w) for _, m, w in original.interactions)
        method = PRODUCT_METHOD if observed else DMC_METHOD
    products = [p for pairs in _product_pairs(original).values() for p in pairs]
    layout = _layout(partable, products)
    rep = representation(partable)
    data_matrix = items[partable.indicators].to_numpy(dtype=float)
    theta, vcov, fit = _fit_sample(layout, data_matrix)

    def quantities(th: np.ndarray) -> np.ndarray:
        rows = layout.rows(th)
        return np.concatenate([rows, _effects(partable, rep, rows)[1]], axis=-1)

    est = quantities(theta)
    jac = _jacobian(quantities, theta)
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, vcov, jac), 0, None))
    columns = _wald_table(est, se, level)
    attrs: dict = {
        "method": method,
        "fit": fit,
        "ci": f"Wald {level:.0%} (delta method for effects)",
    }
    boot_rows = None
    if bootstrap > 0:
        draws, info = _bootstrap(layout, rep, data_matrix, theta, bootstrap, seed, workers)
        columns.update(_percentile_columns(est, quantities(draws), level))
        attrs["bootstrap"] = info
        attrs["ci"] = f"percentile bootstrap {level:.0%}, B = {bootstrap}, seed = {seed}"
        boot_rows = layout.rows(draws)
    table = _assemble(partable, rep, layout.rows(theta), columns, method)
    table = _restore_interaction_names(table, original)
    table.attrs = attrs
    return MLFit(table, original, partable, layout.rows(theta), boot_rows)


def _assemble(
    partable: ParTable, rep: Representation, rows: np.ndarray, columns: dict, method: str
) -> pd.DataFrame:
    """Parameter rows then effect rows, with estimates, intervals and ``std.all``."""
    params = partable.parameters.reset_index(drop=True)[["lhs", "op", "rhs", "label"]]
    keys, _ = _effects(partable, rep, rows)
    table = pd.concat([params, pd.DataFrame(keys, columns=params.columns)], ignore_index=True)
    for name, values in columns.items():
        table[name] = values
    # lavaan standardises defined effects by evaluating them on the standardised parameters.
    std_rows = standardized_draws(partable, rep, rows)
    table["std.all"] = np.concatenate([std_rows, _effects(partable, rep, std_rows)[1]])
    table["method"] = method
    return table[ESTIMATE_COLUMNS]


# ---- bootstrap --------------------------------------------------------------------------------
def _bootstrap_chunk(
    layout: _Layout, data: np.ndarray, indices: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Refit one block of resamples (rows: free parameters, then item means).

    Every resample starts from the full-sample estimates, so a result does not depend on
    which block or process it ran in.
    """
    k = layout.n_cov
    out = np.full((len(indices), k + data.shape[1]), np.nan)
    with _quiet_semopy():
        fitted = _Semopy(layout)
        for b, idx in enumerate(indices):
            sample = _resample(data, idx, layout.products)
            out[b, :k] = fitted.fit(pd.DataFrame(sample, columns=layout.items), start[:k])
            out[b, k:] = sample.mean(axis=0)
    return out


def _resample(
    data: np.ndarray, idx: np.ndarray, products: tuple[tuple[int, int, int], ...]
) -> np.ndarray:
    """Rows ``idx`` of the data, product indicators double-centred again within the resample
    (the centring is part of the estimator, so it is bootstrapped with it)."""
    sample = data[idx]
    for target, a, b in products:
        sample[:, target] = _double_centred(sample[:, a], sample[:, b])
    return sample


def _bootstrap(
    layout: _Layout,
    rep: Representation,
    data: np.ndarray,
    theta: np.ndarray,
    n_boot: int,
    seed: int,
    workers: int,
) -> tuple[np.ndarray, dict]:
    """Free-parameter vectors of the converged resamples (admissible or not), and counts."""
    rng = np.random.default_rng(seed)
    # All resample indices are drawn up front, so results do not depend on ``workers``.
    indices = rng.integers(0, len(data), size=(n_boot, len(data)))
    blocks = np.array_split(indices, max(1, min(n_boot, 4 * workers)))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(
                pool.map(
                    _bootstrap_chunk,
                    [layout] * len(blocks),
                    [data] * len(blocks),
                    blocks,
                    [theta] * len(blocks),
                )
            )
    else:
        parts = [_bootstrap_chunk(layout, data, block, theta) for block in blocks]
    draws = np.concatenate(parts)
    ok = np.isfinite(draws).all(axis=1)
    inadmissible = ~_admissible(rep, layout.rows(draws[ok]), layout.measured)
    info = {
        "B": n_boot,
        "failed": int((~ok).sum()),
        "inadmissible": int(inadmissible.sum()),
        "kept": int(ok.sum()),
    }
    return draws[ok], info


def _admissible(rep: Representation, rows: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """lavaan's post-fit check: positive-definite latent and residual covariance matrices.

    ``measured``: positions of the items with a residual (observed structural variables have
    none; their variances are in the latent block).
    """
    ext = extend(rows)
    ok = np.ones(len(rows), dtype=bool)
    for index in (rep.psi, rep.theta[np.ix_(measured, measured)]):
        if index.size:
            ok &= np.linalg.eigvalsh(ext[..., index])[:, 0] > 0
    return ok


def _percentile_columns(est: np.ndarray, draws: np.ndarray, level: float) -> dict:
    alpha = (1 - level) / 2
    se = draws.std(axis=0, ddof=1) if len(draws) > 1 else np.full(est.shape, np.nan)
    se = np.where(np.ptp(draws, axis=0) > 0, se, 0.0) if len(draws) else se
    wald = _wald_table(est, se, level)
    lower, upper = np.quantile(draws, [alpha, 1 - alpha], axis=0) if len(draws) else (est, est)
    return {**wald, "ci.lower": lower, "ci.upper": upper}
