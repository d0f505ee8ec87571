"""The four methods of ``compare``, each turned into rows of the comparison table.

Latent-variable fits (the Bayesian posterior draws and the ML bootstrap resamples) go through
the same code: parameter rows -> :func:`bayes_sor.posterior.effects.effect_draws` -> paths and
effects on both scales (:func:`model_quantities`), so the methods differ only in how the rows were
estimated. The study's composite path model is a parameter table too (every construct an
observed variable), filled with OLS coefficients per bootstrap resample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.checks.reliability import cronbach_alpha
from bayes_sor.comparison.composite import (
    OLSFit,
    _batched_ols,
    _design,
    baron_kenny,
    composite_scores,
    moderation,
    moderator_points,
    ols,
)
from bayes_sor.comparison.ml_sem import ml_sem_fit
from bayes_sor.comparison.published import KEY, Published, baron_kenny_quantity, moderation_quantity
from bayes_sor.comparison.table import VALUE_COLUMNS, MethodEstimates
from bayes_sor.errors import BayesSORError, ModelSpecError
from bayes_sor.posterior.effects import Effect, defined_draws, effect_draws
from bayes_sor.posterior.estimates import standardized_draws
from bayes_sor.posterior.summary import summarize
from bayes_sor.runs.rundir import Run, read_table
from bayes_sor.spec.matrices import Representation, implied_moments, representation
from bayes_sor.spec.partable import ParTable, build_partable, with_dummy_controls
from bayes_sor.spec.syntax import ModelSpec, parse


@dataclass(frozen=True)
class Quantities:
    """The comparison quantities of one model, per draw (leading axes) on both scales."""

    keys: list[tuple[str, str, str]]
    raw: np.ndarray
    std: np.ndarray


# ---- the quantities of a model, from its parameter rows --------------------------------------
def _ends(effect: Effect) -> tuple[str, str]:
    names = effect.effect.split(" -> ")
    return names[0], names[-1]


def comparable_effects(effects: list[Effect]) -> list[Effect]:
    """The effects that get rows: direct effects are the path rows, and a total indirect effect
    made of one specific path repeats that path's row."""
    n_paths = Counter(_ends(e) for e in effects if e.kind == "indirect")
    return [
        e
        for e in effects
        if e.kind != "direct" and not (e.kind == "total_indirect" and n_paths[_ends(e)] == 1)
    ]


def _std_factor(effect: Effect, sd: dict[str, np.ndarray]) -> np.ndarray:
    """An effect of X on Y per SD of X, in SDs of Y; the index of moderated mediation also per
    SD of its moderator. Conditional effects already sit at W values in W's own units."""
    x, y = _ends(effect)
    factor = sd[x] / sd[y]
    if effect.kind == "index_moderated_mediation":
        factor = factor * sd[effect.moderator_value]
    return factor


def model_quantities(
    partable: ParTable,
    par: np.ndarray,
    std_par: np.ndarray,
    sd: dict[str, np.ndarray],
    effects: list[Effect],
) -> Quantities:
    """Paths and effects (raw and standardised) from parameter rows (..., n_par).

    ``std_par``: the rows standardised (for path rows and ``:=`` quantities, which are evaluated
    on them as lavaan does); ``sd``: each construct's SD (..., ) to standardise effects.
    """
    params = partable.parameters.reset_index(drop=True)
    paths = np.flatnonzero(params.op.to_numpy() == "~")
    keys = [(f"{params.lhs[k]} ~ {params.rhs[k]}", "path", "") for k in paths]
    raw = [par[..., k] for k in paths]
    std = [std_par[..., k] for k in paths]
    defined = {e.effect: e.draws for e in defined_draws(partable, std_par)}
    for e in comparable_effects(effects):
        keys.append((e.effect, e.kind, e.moderator_value))
        raw.append(e.draws)
        std.append(defined[e.effect] if e.kind == "defined" else e.draws * _std_factor(e, sd))
    if not keys:
        raise ModelSpecError("the model has no structural paths or effects to compare")
    shape = par.shape[:-1]
    return Quantities(
        keys,
        np.stack([np.broadcast_to(v, shape) for v in raw], axis=-1),
        np.stack([np.broadcast_to(v, shape) for v in std], axis=-1),
    )


def latent_model_quantities(
    partable: ParTable, rep: Representation, par: np.ndarray, effects: list[Effect]
) -> Quantities:
    """:func:`model_quantities` of a latent-variable fit: std.all from model-implied SDs."""
    latent_sd = np.sqrt(np.diagonal(implied_moments(rep, par).latent_cov, axis1=-2, axis2=-1))
    sd = dict(zip(rep.latents, np.moveaxis(latent_sd, -1, 0), strict=True))
    return model_quantities(partable, par, standardized_draws(partable, rep, par), sd, effects)


def _rows(
    keys: list[tuple[str, str, str]], scale: str, values: dict[str, np.ndarray], note: str = ""
) -> pd.DataFrame:
    """A method's rows from per-quantity columns (est, se, lower, upper)."""
    frame = pd.DataFrame(keys, columns=KEY[:3])
    frame["scale"] = scale
    for column in ("est", "se", "lower", "upper"):
        frame[column] = np.asarray(values.get(column, np.full(len(keys), np.nan)), dtype=float)
    frame["significant"] = None
    frame["note"] = note
    return frame


def _percentile_rows(
    keys: list, scale: str, point: np.ndarray, draws: np.ndarray, level: float
) -> pd.DataFrame:
    """Point estimates with bootstrap SDs and percentile intervals."""
    alpha = (1 - level) / 2
    lower, upper = np.quantile(draws, [alpha, 1 - alpha], axis=0)
    return _rows(
        keys, scale, {"est": point, "se": draws.std(axis=0, ddof=1), "lower": lower, "upper": upper}
    )


def _note_interactions(rows: pd.DataFrame, note: str) -> None:
    """Say how a method estimated the interaction, on the interaction's own rows."""
    rows.loc[(rows.kind == "path") & rows.quantity.str.contains(":"), "note"] = note


# ---- 1. Bayesian -----------------------------------------------------------------------------
def _stored_effects(posterior: xr.Dataset) -> list[Effect]:
    """The run's effect draws exactly as ``fit`` stored them (``effects.csv`` summarises them)."""
    if "effects" not in posterior:
        return []
    da = posterior["effects"].transpose("chain", "draw", "effect_id")
    return [
        Effect(str(e), str(k), str(m), da.values[..., i])
        for i, (e, k, m) in enumerate(
            zip(da.effect.values, da.kind.values, da.moderator_value.values, strict=True)
        )
    ]


def _csv_rows(run_dir: Path, keys: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Raw (model-metric) rows as the run reported them in estimates.csv / effects.csv."""

    estimates = read_table(run_dir / "estimates.csv")
    effects = read_table(run_dir / "effects.csv")
    paths = {
        f"{r['lhs']} ~ {r['rhs']}": r for r in estimates[estimates.op == "~"].to_dict("records")
    }
    others = {(r["effect"], r["kind"], r["moderator_value"]): r for r in effects.to_dict("records")}
    found = [paths.get(q) if kind == "path" else others.get((q, kind, m)) for q, kind, m in keys]
    values = {
        column: [np.nan if r is None else r[source] for r in found]
        for column, source in (
            ("est", "mean"),
            ("se", "sd"),
            ("lower", "ci.lower"),
            ("upper", "ci.upper"),
        )
    }
    return _rows(keys, "raw", values)


def _convergence(run_dir: Path) -> str:
    """The run's worst R-hat and bulk ESS, so a reader sees the draws can be trusted."""

    estimates = read_table(run_dir / "estimates.csv")
    if not {"r_hat", "ess_bulk"} <= set(estimates.columns) or estimates.r_hat.isna().all():
        return ""
    return f"; max R-hat {estimates.r_hat.max():.3f}, min bulk ESS {estimates.ess_bulk.min():.0f}"


def bayes_estimates(run: Run) -> MethodEstimates:
    """The run's rows: raw from its CSVs, standardised from its posterior draws."""
    attrs = run.attrs
    level = float(attrs.get("bayes_sor_ci_prob", 0.95))
    hdi = str(attrs.get("bayes_sor_hdi", "false")) == "true"
    q = latent_model_quantities(run.partable, run.rep, run.par, _stored_effects(run.posterior))
    draws = xr.DataArray(
        q.std, dims=("chain", "draw", "quantity"), coords={"quantity": np.arange(len(q.keys))}
    )
    summary = summarize(draws, level, hdi)
    std = _rows(
        q.keys,
        "std",
        {
            "est": summary["mean"],
            "se": summary["sd"],
            "lower": summary["ci.lower"],
            "upper": summary["ci.upper"],
        },
    )
    table = pd.concat([std, _csv_rows(run.path, q.keys)], ignore_index=True)
    _note_interactions(table, "product of the latent variables themselves")
    chains, n_draws = run.par.shape[:2]
    interval = "highest-density" if hdi else "equal-tailed"
    description = (
        f"posterior mean and {level:.0%} {interval} credible interval of run "
        f"`{run.path}` ({chains} chains x {n_draws} draws, "
        f"{attrs.get('bayes_sor_likelihood', '?')} likelihood, "
        f"{attrs.get('bayes_sor_identification', '?')} identification"
        f"{_convergence(run.path)}); std.all per draw from the model-implied "
        "latent SDs"
    )
    info = {
        "level": level,
        "hdi": hdi,
        "n_obs": run.n_obs,
        "run": run.path,
        "identification": attrs.get("bayes_sor_identification", "std.lv"),
    }
    return MethodEstimates("bayes", table, description, info)


# ---- 2. ML SEM -------------------------------------------------------------------------------
def ml_estimates(
    partable: ParTable, items: pd.DataFrame, boot: int, seed: int, workers: int, level: float
) -> MethodEstimates:
    """ML estimates with percentile-bootstrap intervals for every row, both scales.

    Each resample's parameter rows go through the same effect and standardisation code as the
    posterior draws, so the two methods differ only in how the rows were estimated.
    """
    if boot < 2:
        raise BayesSORError("--boot must be at least 2 (1000 or more for reported intervals)")
    fit = ml_sem_fit(partable, items, bootstrap=boot, seed=seed, workers=workers, level=level)
    if fit.boot_rows is None or len(fit.boot_rows) < 2:
        raise BayesSORError(
            "almost every ML bootstrap resample failed to converge; the ML "
            "comparison cannot give intervals for this model and data"
        )
    rows = fit.model_rows(np.vstack([fit.rows[None], fit.boot_rows]))
    rep = representation(partable)
    q = latent_model_quantities(partable, rep, rows, effect_draws(partable, rep, rows))
    table = pd.concat(
        [
            _percentile_rows(q.keys, "std", q.std[0], q.std[1:], level),
            _percentile_rows(q.keys, "raw", q.raw[0], q.raw[1:], level),
        ],
        ignore_index=True,
    )
    _note_interactions(
        table,
        "double-mean-centred product indicators (Lin et al. 2010), "
        "coefficient rescaled to the latent M x W scale",
    )
    attrs = fit.table.attrs
    boot_info, fit_info = attrs["bootstrap"], attrs["fit"]
    description = (
        f"{attrs['method']}; estimates at the ML optimum, {level:.0%} percentile "
        f"bootstrap intervals (B = {boot}, seed {seed}; {boot_info['kept']} "
        f"converged, {boot_info['inadmissible']} of them inadmissible and kept as "
        f"lavaan does); chi2 = {fit_info['chisq']:.1f}, df = {fit_info['df']}, "
        f"CFI = {fit_info['cfi']:.3f}, RMSEA = {fit_info['rmsea']:.3f}"
    )
    incomplete = int(items[partable.indicators].isna().any(axis=1).sum())
    if incomplete:
        description += (
            f"; listwise deletion: {incomplete} of {len(items)} respondents with a "
            "missing answer were left out of the ML fit (bayes_sor's default "
            "--missing model keeps them)"
        )
    if partable.interactions:
        description += (
            "; the product latent's coefficient is rescaled to the latent M x W "
            "scale (normal-theory Var(M) Var(W) + Cov(M, W)^2) for raw rows and "
            "conditional effects, which are read at -1/0/+1 SD of the latent W "
            "(percentile rows at the normal quantiles)"
        )
    return MethodEstimates("ml", table, description, {"fit": fit_info, "bootstrap": boot_info})


# ---- 3. the study's approach -----------------------------------------------------------------
def structural_partable(
    partable: ParTable, dummies: Mapping[str, list[str]] | None = None
) -> ParTable:
    """The model's structural part with every construct an observed (composite) variable,
    each dummy-coded control (``dummies``) replaced by its dummies as in the fit."""
    spec = parse(partable.text)
    statements = [s for s in spec.statements if s.op in ("~", ":=")]
    return with_dummy_controls(build_partable(ModelSpec(statements, {}, [], "")), dummies or {})


@dataclass
class _Equation:
    """One model equation on composites: its OLS fit and design (centred, with product terms)."""

    outcome: str
    terms: list[str]
    design: pd.DataFrame
    fit: OLSFit


def _equations(cp: ParTable, centred: pd.DataFrame, controls: pd.DataFrame) -> list[_Equation]:
    out = []
    for outcome, rows in cp.regressions.groupby("lhs", sort=False):
        terms = list(rows.rhs)
        columns = {}
        for term in terms:
            first, _, second = term.partition(":")
            columns[term] = centred[first] * centred[second] if second else centred[first]
        design = pd.concat([pd.DataFrame(columns, index=centred.index), controls], axis=1)
        out.append(_Equation(outcome, terms, design, ols(centred[outcome], design)))
    return out


def _composite_rows(
    cp: ParTable, centred: pd.DataFrame, equations: list[_Equation], coefs: dict[str, np.ndarray]
) -> np.ndarray:
    """Parameter rows of the composite path model (..., n_par): OLS paths, sample
    (co)variances of the exogenous composites, residual variances of the endogenous ones."""
    params = cp.parameters.reset_index(drop=True)
    shape = next(iter(coefs.values())).shape[:-1] if coefs else ()
    rows = np.zeros((*shape, len(params)))
    cov = centred.cov()
    residual = {e.outcome: (1 - e.fit.r2) * centred[e.outcome].var() for e in equations}
    exogenous = set(cp.exogenous)
    for k, r in enumerate(params.itertuples()):
        if r.op == "=~":
            rows[..., k] = r.value
        elif r.op == "~~" and r.lhs in exogenous and r.rhs in exogenous:
            rows[..., k] = cov.loc[r.lhs, r.rhs]
        elif r.op == "~~" and r.lhs == r.rhs:
            rows[..., k] = residual[r.lhs]
    position = {(r.lhs, r.rhs): k for k, r in enumerate(params.itertuples()) if r.op == "~"}
    for e in equations:
        for j, term in enumerate(e.terms):
            rows[..., position[e.outcome, term]] = coefs[e.outcome][..., j]
    return rows


def _resampled_coefficients(
    equations: list[_Equation], centred: pd.DataFrame, boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Each equation's term coefficients (1 + boot, n_terms): the estimates, then one row per
    resample, drawn as :func:`~bayes_sor.comparison.composite.process_model14` draws them."""
    n = len(centred)
    idx = np.random.default_rng(seed).integers(0, n, size=(boot, n))
    coefs = {}
    for e in equations:
        target = centred[e.outcome].to_numpy(float)
        draws = _batched_ols(_design(e.design, list(e.design.columns)), target, idx)
        point = e.fit.coef.to_numpy(float)[None]
        # column 0 is the intercept; the controls follow the model's terms
        coefs[e.outcome] = np.concatenate([point, draws])[:, 1 : len(e.terms) + 1]
    return coefs


def _standardised_paths(
    cp: ParTable, equations: list[_Equation], centred: pd.DataFrame, rows: np.ndarray
) -> np.ndarray:
    """The rows with each path times sd(term) / sd(outcome) (SPSS's beta; a product term by
    the SD of the product column)."""
    std_rows = rows.copy()
    for e in equations:
        for term in e.terms:
            k = cp.names.index(f"{e.outcome}~{term}")
            std_rows[..., k] = rows[..., k] * e.design[term].std() / centred[e.outcome].std()
    return std_rows


def study_estimates(
    partable: ParTable,
    data: pd.DataFrame,
    controls: pd.DataFrame,
    boot: int,
    seed: int,
    level: float,
    dummies: Mapping[str, list[str]] | None = None,
) -> MethodEstimates:
    """Composite OLS, Baron-Kenny and moderation regressions, PROCESS-style bootstrap effects.
    ``dummies``: the model's dummy-coded controls (``data`` has their dummy columns).

    Composites are mean-centred (so a product term is the mean-centred product and lower-order
    terms are effects at the other variable's mean, as in the Bayesian model). For one
    X -> M -> Y path with W on the b path and the other predictors as covariates the effects
    equal :func:`~bayes_sor.comparison.composite.process_model14`'s, intervals included.
    """
    if boot < 2:
        raise BayesSORError("--process-boot must be at least 2 (5000 for reported intervals)")
    scores = composite_scores(partable, data)
    frame = pd.concat([scores, controls], axis=1).dropna()
    centred = frame[scores.columns] - frame[scores.columns].mean()
    controls = frame[controls.columns]
    cp = structural_partable(partable, dummies)
    equations = _equations(cp, centred, controls)
    rows = _composite_rows(
        cp, centred, equations, _resampled_coefficients(equations, centred, boot, seed)
    )
    # PROCESS probes W at values fixed on the full sample, in every resample
    points = np.array([moderator_points(centred[w]) for w in cp.moderators]).reshape(-1, 3)
    effects = effect_draws(
        cp, representation(cp), rows, np.broadcast_to(points, (boot + 1, *points.shape))
    )
    q = model_quantities(
        cp,
        rows,
        _standardised_paths(cp, equations, centred, rows),
        dict(centred.std().items()),
        effects,
    )
    # paths get SPSS's t intervals (what the studies report); effects the bootstrap
    others = [k for k, key in enumerate(q.keys) if key[1] != "path"]
    with_controls = centred.join(controls)
    table = pd.concat(
        [
            _ols_path_rows(equations, centred),
            _percentile_rows(
                [q.keys[k] for k in others], "std", q.std[0, others], q.std[1:, others], level
            ),
            _baron_kenny_rows(effects, with_controls, list(controls.columns)),
            _moderation_rows(partable, with_controls, list(controls.columns)),
        ],
        ignore_index=True,
    )
    alphas = _alphas(partable, data.loc[frame.index])
    description = _study_description(
        partable, controls, len(centred), bool(others), boot, seed, level, alphas
    )
    return MethodEstimates("study", table, description, {"alphas": alphas, "n": len(centred)})


def _standardised(table: pd.DataFrame, factor: pd.Series | np.ndarray) -> dict[str, np.ndarray]:
    """OLS rows (est, se, ci.lower, ci.upper) times the standardising factor sd(x) / sd(y)."""
    factor = np.asarray(factor, dtype=float)
    return {
        "est": table["est"].to_numpy() * factor,
        "se": table["se"].to_numpy() * factor,
        "lower": table["ci.lower"].to_numpy() * factor,
        "upper": table["ci.upper"].to_numpy() * factor,
    }


def _ols_path_rows(equations: list[_Equation], centred: pd.DataFrame) -> pd.DataFrame:
    """Each model path: the OLS beta (SPSS's standardised coefficient) with its t interval."""
    parts = []
    for e in equations:
        table = e.fit.table.loc[e.terms]
        factor = e.design[e.terms].std().to_numpy() / centred[e.outcome].std()
        keys = [(f"{e.outcome} ~ {term}", "path", "") for term in e.terms]
        parts.append(_rows(keys, "std", _standardised(table, factor)))
    rows = pd.concat(parts, ignore_index=True)
    _note_interactions(
        rows, "product of the mean-centred composites; beta by the SD of the product"
    )
    return rows


def _baron_kenny_rows(
    effects: list[Effect], frame: pd.DataFrame, controls: list[str]
) -> pd.DataFrame | None:
    """Baron-Kenny steps for every simple mediation X -> M -> Y of the model (Sobel a*b)."""
    parts = []
    for e in effects:
        names = e.effect.split(" -> ")
        if e.kind != "indirect" or len(names) != 3:
            continue
        x, m, y = names
        steps = baron_kenny(frame, x, m, y, controls)
        # beta / est is sd(x) / sd(y) of each step (for a*b: of X and Y)
        factor = steps.beta / steps.est.where(steps.est != 0)
        keys = [(baron_kenny_quantity(s, x, m, y), "baron_kenny", "") for s in steps.path]
        rows = _rows(keys, "std", _standardised(steps, factor))
        rows.loc[steps.path.to_numpy() == "a*b", "note"] = "interval by the Sobel (delta) SE"
        parts.append(rows)
    return pd.concat(parts, ignore_index=True) if parts else None


def _moderation_rows(
    partable: ParTable, frame: pd.DataFrame, controls: list[str]
) -> pd.DataFrame | None:
    """The studies' moderation regression: Y on centred M, W and M x W plus the controls."""
    parts = []
    for y, m, w in partable.interactions:
        fit = moderation(frame, m, w, y, controls)
        terms = [m, w, f"{m}:{w}"]
        table = fit.table.loc[terms]
        keys = [(moderation_quantity(y, t), "moderation", "") for t in terms]
        parts.append(
            _rows(
                keys, "std", _standardised(table, table.beta / table.est), note=f"R2 = {fit.r2:.3f}"
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else None


def _alphas(partable: ParTable, data: pd.DataFrame) -> dict[str, float]:
    """Cronbach's alpha of each multi-item composite (what attenuates composite paths), from
    the covariance matrix of the respondents who answered all its items."""
    t = partable.table
    out = {}
    for latent in partable.latents:
        items = list(t.rhs[(t.op == "=~") & (t.lhs == latent)])
        if len(items) > 1:
            values = data[items].apply(pd.to_numeric, errors="coerce").dropna()
            out[latent] = cronbach_alpha(np.cov(values.to_numpy(float), rowvar=False))
    return out


def _study_description(
    partable: ParTable,
    controls: pd.DataFrame,
    n: int,
    effects: bool,
    boot: int,
    seed: int,
    level: float,
    alphas: dict[str, float],
) -> str:
    listed = ", ".join(controls.columns)
    text = (
        f"composite scores (item means), mean-centred, N = {n}; OLS of each model equation"
        + (" with the mean-centred product term" if partable.interactions else "")
        + (
            f" and the controls {listed} (categorical ones dummy-coded against their first level)"
            if listed
            else ", no controls"
        )
        + f"; paths: standardised coefficients (beta) with {level:.0%} t intervals"
    )
    if effects:
        text += (
            f"; effects: PROCESS-style {level:.0%} percentile bootstrap, B = {boot}, "
            f"seed {seed}; Baron-Kenny a*b: Sobel interval"
        )
    if partable.interactions:
        text += (
            "; conditional effects at W = mean -1/0/+1 SD (percentile rows at PROCESS's "
            "16/50/84th percentiles)"
        )
    if alphas:
        text += f"; Cronbach's alpha {min(alphas.values()):.2f}-{max(alphas.values()):.2f}"
    return text


# ---- 4. published ----------------------------------------------------------------------------
def published_estimates(published: Published, identification: str) -> MethodEstimates:
    """Published rows; raw values only when they share the model's identification."""
    table = published.table.rename(columns={"estimate": "est"})
    table["se"] = np.nan
    dropped = 0
    if published.identification not in (None, identification):
        dropped = int((table.scale == "raw").sum())
        table = table[table.scale != "raw"]
    description = published.source
    if dropped:
        description += (
            f" ({dropped} raw values left out: they are in the "
            f"{published.identification} metric, the model here uses "
            f"{identification})"
        )
    return MethodEstimates(
        "published",
        table[[*KEY, *VALUE_COLUMNS, "note"]].copy(),
        description,
        {"dropped_raw": dropped},
    )
