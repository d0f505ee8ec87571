"""Posterior predictive checks of a run: ``python -m bayes_sor ppc RUN_DIR``.

Per posterior draw a replicated data set of N respondents is simulated from the model-implied
moments (latent responses cut at the thresholds for ordinal items). From them:

- PPP, as blavaan: P(D(y_rep; theta) >= D(y; theta)), with D the likelihood-ratio chi-square
  against the saturated model (continuous items) or the sum over item pairs of the G^2 of the
  pair's contingency table against its bivariate-probit cell probabilities (ordinal items);
- SRMR per draw, and BRMSEA / BCFI / BTLI of Garnier-Villarreal & Jorgensen (2020) with pD =
  p_loo, against the independence (null) model drawn from its closed-form posterior;
- LOO (PSIS) from the pointwise log-likelihood (:mod:`bayes_sor.checks.loglik`);
- observed minus predicted item correlations with 95% predictive intervals, and item means,
  SDs, skewness and kurtosis against their predictive intervals.

Missing answers (``fit --missing model``): each replicated data set has the observed data's
missing answers, the chi-square is the case-wise (FIML) likelihood ratio against the saturated
model fitted by EM, as lavaan's and blavaan's, and correlations and SRMR use the saturated
model's (EM) covariance matrix in place of the sample one (:mod:`bayes_sor.data.missing`).

Writes ``fit_measures.csv``, ``residuals.csv``, ``ppc_items.csv``, ``ppc_items.png``,
``ppc_residuals.png``, ``reliability.csv`` and a "Model checking" section of ``report.md``,
rewriting ``report.html`` with it (figures, text and the command:
:mod:`bayes_sor.checks.ppc_report`; fit indices: :mod:`bayes_sor.checks.fit_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_sor.checks.fit_indices import effective_parameters, fit_indices, model_moments
from bayes_sor.checks.loglik import loglik_kind, loglik_tree, loo, pointwise_loglik
from bayes_sor.checks.predictive import (
    REPLICATION_TOL,
    CaseWise,
    Implied,
    batches,
    correlations,
    cut,
    implied,
    item_moments,
    ml_discrepancy,
    ordinal_codes,
    pairwise_g2,
    replicate,
    sample_moments,
    srmr,
    thin,
    threshold_draws,
)
from bayes_sor.data.missing import Patterns, casewise_loglik, observed_moments
from bayes_sor.errors import DataError
from bayes_sor.runs.rundir import Run

#: Replicated data sets kept for the item plot.
N_PLOTTED = 50
#: Pareto k above which a respondent's LOO estimate is unreliable (the brief's fixed cut-off).
K_BAD = 0.7
STATS = ("mean", "sd", "skewness", "kurtosis")


@dataclass
class PPCResult:
    """Everything ``ppc`` reports for one run."""

    fit_measures: pd.DataFrame
    residuals: pd.DataFrame
    items: pd.DataFrame
    observed: np.ndarray | None
    replicated: np.ndarray
    item_names: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class _Replications:
    """Per-draw quantities collected while replicating (one entry per selected draw)."""

    d_obs: np.ndarray
    d_rep: np.ndarray
    srmr: np.ndarray
    corr: np.ndarray
    stats: np.ndarray
    kept: np.ndarray


# ---- observed scale ----------------------------------------------------------------------------
def item_constructs(run: Run) -> dict[str, str]:
    """Each item's construct(s), e.g. ``{"x9": "speed"}`` (``a+b`` for cross-loaded items)."""
    t = run.partable.structure
    loads = t[t.op == "=~"]
    return {item: "+".join(loads.loc[loads.rhs == item, "lhs"]) for item in run.items}


def observed_scale(run: Run) -> tuple[np.ndarray | None, str]:
    """Observed data on the scale replications are compared on, and the kind of data.

    Kinds: ``continuous``, ``ordinal`` (answers as category codes), ``mixed``, ``summary``
    (a covariance matrix only: no respondents).
    """
    if run.y is None:
        return None, "summary"
    ordinal = [j for j, item in enumerate(run.items) if item in run.rep.thresholds]
    if not ordinal:
        return run.y, "continuous"
    observed = run.y.copy()
    observed[:, ordinal] = ordinal_codes(
        run.y[:, ordinal], [run.categories[run.items[j]] for j in ordinal]
    )
    return observed, "mixed" if len(ordinal) < len(run.items) else "ordinal"


def _categories(column: np.ndarray) -> np.ndarray:
    """The distinct answers given (missing ones left out)."""
    return np.unique(column[~np.isnan(column)])


def _check_categories(run: Run, observed: np.ndarray) -> None:
    for j, item in enumerate(run.items):
        if item not in run.rep.thresholds:
            continue
        want = len(run.rep.thresholds.get(item, [])) + 1
        have = len(_categories(observed[:, j]))
        if have != want:
            raise DataError(
                f"ordinal item {item!r} has {have} observed categories but "
                f"{want - 1} thresholds in the run; the run's data do not match it"
            )


# ---- replication -------------------------------------------------------------------------------
def replicate_all(
    run: Run, moments: Implied, draws: np.ndarray, kind: str, rng: np.random.Generator
) -> _Replications:
    """Replicate one data set per draw and collect discrepancies and statistics.

    With missing answers a replication misses the same answers as the data, and its moments
    are the saturated model's (EM), fitted per replication.
    """
    observed, _ = observed_scale(run)
    answered = None if run.y is None else ~np.isnan(run.y)
    incomplete = answered is not None and not answered.all()
    patterns = Patterns.of(run.y) if incomplete else None
    casewise = CaseWise.of(run.y) if incomplete and kind == "continuous" else None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _Replications.__dataclass_fields__}
    for idx in batches(len(draws)):
        mom = moments.take(idx)
        y_rep = replicate(mom, run.n_obs, rng)
        if kind in ("ordinal", "mixed"):
            taus = threshold_draws(run.rep, draws[idx])
            y_rep = cut(y_rep, taus)
            if incomplete:
                y_rep = np.where(answered, y_rep, np.nan)
            none = np.full(len(y_rep), np.nan)  # no discrepancy for mixed items
            ordinal = kind == "ordinal"
            parts["d_obs"].append(pairwise_g2(observed, mom, taus) if ordinal else none)
            parts["d_rep"].append(pairwise_g2(y_rep, mom, taus) if ordinal else none)
            parts["srmr"].append(none)
            cov_rep = (
                CaseWise.of(y_rep, patterns, tol=REPLICATION_TOL).cov
                if incomplete
                else sample_moments(y_rep)[1]
            )
        elif incomplete:
            y_rep = np.where(answered, y_rep, np.nan)
            replicated = CaseWise.of(y_rep, patterns, start=mom, tol=REPLICATION_TOL)
            parts["d_obs"].append(casewise.chisq(mom))
            parts["d_rep"].append(replicated.chisq(mom))
            parts["srmr"].append(srmr(run.cov, mom.cov))
            cov_rep = replicated.cov
        else:
            mean_rep, cov_rep = sample_moments(y_rep)
            mean_rep = None if run.mean is None else mean_rep
            parts["d_obs"].append(ml_discrepancy(run.n_obs, run.mean, run.cov, mom))
            parts["d_rep"].append(ml_discrepancy(run.n_obs, mean_rep, cov_rep, mom))
            parts["srmr"].append(srmr(run.cov, mom.cov))
        parts["corr"].append(correlations(cov_rep))
        parts["stats"].append(item_moments(y_rep))
        kept = sum(len(k) for k in parts["kept"])
        parts["kept"].append(y_rep[: max(N_PLOTTED - kept, 0)])
    return _Replications(**{k: np.concatenate(v) for k, v in parts.items()})


# ---- fit measures ------------------------------------------------------------------------------
def _interval(values: np.ndarray, ci: float) -> tuple[float, float, float]:
    lo, hi = np.nanquantile(values, [(1 - ci) / 2, (1 + ci) / 2])
    return float(np.nanmean(values)), float(lo), float(hi)


def _interval_rows(name: str, values: np.ndarray, ci: float, note: str) -> list[tuple]:
    mean, lo, hi = _interval(values, ci)
    return [(name, mean, note), (f"{name}.ci.lower", lo, ""), (f"{name}.ci.upper", hi, "")]


def fit_measures(
    run: Run, reps: _Replications, kind: str, draws_used: int, ci: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[str]]:
    """The ``fit_measures.csv`` rows (measure, value, note) and notes for the report."""
    notes: list[str] = []
    chisq = "likelihood-ratio chi-square vs the saturated model"
    discrepancy = {
        "continuous": chisq,
        "summary": chisq + " (covariances only)",
        "ordinal": "sum over item pairs of G^2 of the pair's contingency table",
    }
    rows: list[tuple] = [
        ("npar", float(run.partable.n_free), ""),
        ("ntotal", float(run.n_obs), ""),
        ("ppp.draws", float(draws_used), "posterior draws replicated"),
    ]
    if kind == "mixed":
        notes.append(
            "ordinal and continuous items mixed: no PPP discrepancy is implemented for "
            "this case (residual correlations and item checks are reported)"
        )
        rows.append(("ppp", np.nan, notes[-1]))
    else:
        rows.append(("ppp", float(np.mean(reps.d_rep >= reps.d_obs)), discrepancy[kind]))
        rows.append(("chisq", float(np.mean(reps.d_obs)), "posterior mean of D(y; theta)"))
    if run.partable.interactions:
        notes.append(
            "latent interaction: replications and chi-square use the normal "
            "approximation of the implied moments (the items are not normal)"
        )
    ll_kind, why = loglik_kind(run)
    elpd = None if ll_kind is None else loo(loglik_tree(run, pointwise_loglik(run, ll_kind)))
    rows += _loo_rows(elpd, ll_kind, why, notes)
    if kind in ("continuous", "summary"):
        marginal_p = None if elpd is None or ll_kind == "conditional" else float(elpd.p)
        srmr_rows = _interval_rows("srmr", reps.srmr, ci, "posterior of SRMR (Bentler, as lavaan)")
        rows += _chisq_index_rows(run, reps.d_obs, srmr_rows, ci, rng, notes, marginal_p)
    else:
        notes.append(
            "SRMR, BRMSEA, BCFI and BTLI are chi-square based and reported for "
            "continuous items only"
        )
    return pd.DataFrame(rows, columns=["measure", "value", "note"]), notes


def _loo_rows(elpd, kind: str | None, why: str, notes: list[str]) -> list[tuple]:
    if elpd is None:
        notes.append(f"LOO not computed: {why}")
        return [("elpd_loo", np.nan, why)]
    if kind != "marginal":
        notes.append(f"LOO: {why}")
    k = np.asarray(elpd.pareto_k).ravel()
    rows = [
        ("elpd_loo", float(elpd.elpd), why),
        ("se_elpd_loo", float(elpd.se), ""),
        ("p_loo", float(elpd.p), ""),
        ("looic", -2 * float(elpd.elpd), ""),
        ("pareto_k_gt_0.7", float(np.sum(k > K_BAD)), "respondents with Pareto k > 0.7"),
    ]
    if round(elpd.good_k, 2) != K_BAD:  # ArviZ's threshold is 0.7 from about 2200 draws on
        rows.append(
            (
                f"pareto_k_gt_{elpd.good_k:.2f}",
                float(np.sum(k > elpd.good_k)),
                "ArviZ's sample-size dependent threshold",
            )
        )
    return rows


def _chisq_index_rows(
    run: Run,
    d_obs: np.ndarray,
    srmr_rows: list[tuple],
    ci: float,
    rng: np.random.Generator,
    notes: list[str],
    p_loo: float | None,
) -> list[tuple]:
    """pD, the baseline model, SRMR (``srmr_rows``) and BRMSEA / BCFI / BTLI of the chi-square
    ``d_obs`` (summed over the groups of a multiple-group run, as blavaan)."""
    p_d, how = effective_parameters(run, d_obs, p_loo)
    indices, p_d_null = fit_indices(run, d_obs, p_d, rng)
    baseline = sum(_baseline_chisq(group) for _, group in run.by_group())
    null_note = "null model: independence model, closed-form posterior (Jeffreys prior)"
    if run.partable.groups:
        null_note += ", per group"
    notes.append(f"BCFI/BTLI: {null_note}; pD: {how}")
    rows = [
        ("pd", p_d, how),
        ("df_adj", model_moments(run) - p_d, "p* - pD"),
        ("baseline.chisq", float(baseline), "ML chi-square of the independence model"),
        ("baseline.pd", p_d_null, null_note),
        *srmr_rows,
    ]
    for name, values in indices.items():
        rows += _interval_rows(name, values, ci, "Garnier-Villarreal & Jorgensen (2020)")
    return rows


def _baseline_chisq(run: Run) -> float:
    """ML chi-square of the independence model; with missing answers the case-wise one, whose
    ML estimates are each item's answered mean and variance."""
    if run.y is None or not np.isnan(run.y).any():
        return float(run.n_obs * (np.log(np.diag(run.cov)).sum() - np.linalg.slogdet(run.cov)[1]))
    casewise = CaseWise.of(run.y)
    independent = np.nanvar(run.y, axis=0) * np.eye(len(run.items))
    return float(
        2
        * (
            casewise.saturated
            - casewise_loglik(casewise.stats, np.nanmean(run.y, axis=0), independent)
        )
    )


# ---- residuals and item checks ----------------------------------------------------------------
def residual_table(
    run: Run, observed: np.ndarray | None, corr_rep: np.ndarray, ci: float
) -> pd.DataFrame:
    """Observed minus posterior-predicted correlation of every item pair, largest first."""
    r_obs = correlations(run.cov if observed is None else observed_moments(observed)[1])
    lo, hi = np.quantile(corr_rep, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    constructs = item_constructs(run)
    rows = []
    for j, k in zip(*np.triu_indices(len(run.items), k=1), strict=True):
        a, b = run.items[j], run.items[k]
        same = constructs[a] == constructs[b]
        rows.append(
            {
                "item1": a,
                "item2": b,
                "constructs": constructs[a] if same else f"{constructs[a]} / {constructs[b]}",
                "observed": r_obs[j, k],
                "predicted": corr_rep[:, j, k].mean(),
                "residual": r_obs[j, k] - corr_rep[:, j, k].mean(),
                "pi.lower": lo[j, k],
                "pi.upper": hi[j, k],
                "p_rep_ge_obs": float(np.mean(corr_rep[:, j, k] >= r_obs[j, k])),
                "outside": bool(r_obs[j, k] < lo[j, k] or r_obs[j, k] > hi[j, k]),
            }
        )
    table = pd.DataFrame(rows)
    order = table.residual.abs().sort_values(ascending=False).index
    return table.loc[order].reset_index(drop=True)


def item_table(
    run: Run, observed: np.ndarray | None, stats_rep: np.ndarray, ci: float
) -> pd.DataFrame:
    """Observed item mean, SD, skewness, kurtosis against their predictive intervals."""
    if observed is None:  # a covariance matrix has no item distributions to compare
        return pd.DataFrame(
            columns=[
                "item",
                "statistic",
                "observed",
                "predicted",
                "pi.lower",
                "pi.upper",
                "outside",
            ]
        )
    obs = item_moments(observed)
    lo, hi = np.quantile(stats_rep, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    rows = [
        {
            "item": item,
            "statistic": stat,
            "observed": obs[j, s],
            "predicted": stats_rep[:, j, s].mean(),
            "pi.lower": lo[j, s],
            "pi.upper": hi[j, s],
            "outside": bool(obs[j, s] < lo[j, s] or obs[j, s] > hi[j, s]),
        }
        for j, item in enumerate(run.items)
        for s, stat in enumerate(STATS)
    ]
    return pd.DataFrame(rows)


def predictive_check(run: Run, max_draws: int = 1000, seed: int = 1, ci: float = 0.95) -> PPCResult:
    """All posterior predictive checks of ``run`` (no files written)."""
    if run.partable.groups:
        return grouped_check(run, max_draws, seed, ci)
    rng = np.random.default_rng(seed)
    observed, kind = observed_scale(run)
    if kind in ("ordinal", "mixed"):
        _check_categories(run, observed)
    if kind == "summary":
        notes_first = [
            "covariance-matrix input: replications are compared on covariances "
            "only; no item distributions (ppc_items.png) and no LOO"
        ]
    else:
        notes_first = []
    if run.y is not None and np.isnan(run.y).any():
        notes_first.append(
            "missing answers: each replication misses the same answers; the "
            "chi-square is the case-wise (FIML) likelihood ratio against the "
            "saturated model fitted by EM, whose covariance matrix also serves "
            "as the observed one for SRMR and the residual correlations"
        )
    draws = run.draws[thin(len(run.draws), max_draws)]
    reps = replicate_all(run, implied(run.rep, draws), draws, kind, rng)
    measures, notes = fit_measures(run, reps, kind, len(draws), ci, rng)
    return PPCResult(
        measures,
        residual_table(run, observed, reps.corr, ci),
        item_table(run, observed, reps.stats, ci),
        observed,
        reps.kept,
        run.items,
        notes_first + notes,
    )


# ---- multiple groups ---------------------------------------------------------------------------
#: the ``group`` of the rows about all groups together
ALL_GROUPS = "(all)"


def group_replications(
    run: Run, draws: np.ndarray, rng: np.random.Generator
) -> list[tuple[str, Run, _Replications]]:
    """Each group's replications: ``run.n_obs`` respondents of the group per draw from that
    group's own implied moments, its discrepancies against them."""
    out = []
    for label, group in run.by_group():
        _, kind = observed_scale(group)
        out.append(
            (label, group, replicate_all(group, implied(group.rep, draws), draws, kind, rng))
        )
    return out


def grouped_check(run: Run, max_draws: int = 1000, seed: int = 1, ci: float = 0.95) -> PPCResult:
    """The predictive checks of a multiple-group run, as blavaan: per group its PPP,
    chi-square and SRMR from its own replications; overall the PPP of the chi-square summed
    over the groups (per draw), the summed chi-square, SRMR weighted by the groups' sizes (as
    lavaan), LOO over every respondent under their own group's moments and BRMSEA / BCFI /
    BTLI of the summed chi-square (:func:`~bayes_sor.checks.fit_indices.fit_indices`). Residual
    correlations and item checks per group (a ``group`` column)."""
    rng = np.random.default_rng(seed)
    draws = run.draws[thin(len(run.draws), max_draws)]
    groups = group_replications(run, draws, rng)
    d_obs = sum(reps.d_obs for _, _, reps in groups)
    d_rep = sum(reps.d_rep for _, _, reps in groups)
    srmr_all = sum(group.n_obs * reps.srmr for _, group, reps in groups) / run.n_obs
    notes = [
        "multiple groups: each group replicated from its own implied moments; the overall "
        "PPP compares the chi-square summed over the groups (as blavaan), the overall SRMR "
        "is the groups' weighted by their sizes (as lavaan)",
    ]
    rows: list[tuple] = [
        ("npar", float(run.partable.n_free), ""),
        ("ntotal", float(run.n_obs), ""),
        ("ppp.draws", float(len(draws)), "posterior draws replicated"),
        ("ppp", float(np.mean(d_rep >= d_obs)), "chi-square summed over the groups"),
        ("chisq", float(np.mean(d_obs)), "posterior mean of D(y; theta) summed over groups"),
    ]
    ll_kind, why = loglik_kind(run)
    elpd = None if ll_kind is None else loo(loglik_tree(run, pointwise_loglik(run, ll_kind)))
    rows += _loo_rows(elpd, ll_kind, why, notes)
    srmr_rows = _interval_rows("srmr", srmr_all, ci, "weighted by the groups' sizes (as lavaan)")
    if all(observed_scale(group)[1] in ("continuous", "summary") for _, group, _ in groups):
        marginal_p = None if elpd is None or ll_kind == "conditional" else float(elpd.p)
        rows += _chisq_index_rows(run, d_obs, srmr_rows, ci, rng, notes, marginal_p)
    else:
        rows += srmr_rows
        notes.append(
            "SRMR, BRMSEA, BCFI and BTLI are chi-square based and reported for "
            "continuous items only"
        )
    frames = [_group_frame(ALL_GROUPS, rows)]
    residuals, items, observed = [], [], []
    for label, group, reps in groups:
        group_rows = [
            ("ntotal", float(group.n_obs), ""),
            ("ppp", float(np.mean(reps.d_rep >= reps.d_obs)), "this group's chi-square"),
            ("chisq", float(np.mean(reps.d_obs)), "posterior mean of D(y; theta)"),
            *_interval_rows("srmr", reps.srmr, ci, "posterior of SRMR (Bentler, as lavaan)"),
        ]
        frames.append(_group_frame(label, group_rows))
        scale, _ = observed_scale(group)
        observed.append(scale)
        residuals.append(residual_table(group, scale, reps.corr, ci).assign(group=label))
        items.append(item_table(group, scale, reps.stats, ci).assign(group=label))
    residual = pd.concat(residuals, ignore_index=True)
    residual = residual.loc[residual.residual.abs().sort_values(ascending=False).index]
    return PPCResult(
        pd.concat(frames, ignore_index=True),
        _group_first(residual.reset_index(drop=True)),
        _group_first(pd.concat(items, ignore_index=True)),
        None if run.y is None else np.concatenate(observed),
        np.concatenate([reps.kept for _, _, reps in groups], axis=1),
        run.items,
        notes,
    )


def _group_frame(label: str, rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["measure", "value", "note"])
    frame.insert(0, "group", label)
    return frame


def _group_first(table: pd.DataFrame) -> pd.DataFrame:
    return table[["group", *(c for c in table.columns if c != "group")]]
