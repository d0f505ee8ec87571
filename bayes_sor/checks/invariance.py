"""The measurement-invariance ladder: ``python -m bayes_sor invariance MODEL --data CSV --group
COLUMN``.

Fits the model in every group four times, each step adding lavaan's ``group.equal`` kinds:
configural (none), metric (loadings), scalar (+ intercepts), strict (+ residual variances),
and compares each step with the one before it: the posterior predictive p-value of the
chi-square discrepancy (PPP; a model that fits gives about 0.5, below 0.05 a misfit), BRMSEA
and BCFI (Garnier-Villarreal & Jorgensen 2020, as blavaan's for multiple groups), PSIS-LOO
(ELPD) per step, and the ELPD difference to the step before with its standard error. A step
holds when its constraints cost no clear predictive accuracy: its ELPD difference is above
-2 SE (lavaan's LRT answers the same question with a chi-square difference test).

Ordinal items follow lavaan/Mplus (theta parameterisation, :func:`ladder_steps`): the scalar
step equates thresholds instead of intercepts (lavaan's ``group.equal = c("loadings",
"thresholds")``; intercepts too for the continuous items of a mixed model), freeing the later
groups' latent means and the ordinal items' residual variances, which the strict step equates
again (to the first group's 1). Models with ordinal items or a latent interaction are fitted
with the conditional likelihood per group, their latent scores kept (``save_latent``).

Each step is read as a run (:class:`~bayes_sor.runs.rundir.Run`, its groups through
``Run.by_group``) and measured by the checks every run gets: the log-likelihood of
:mod:`bayes_sor.checks.loglik` (each respondent's marginal density under their group's
parameters, case-wise over the answered items: closed form for continuous items, importance
sampling over the latent scores, ``marginal_is``, for ordinal items and interactions; LOO then
on at most :data:`~bayes_sor.checks.loglik.IS_MAX_DRAWS` draws, thinned per chain), the PPP
of ``ppc``'s replications (:func:`bayes_sor.checks.ppc.group_replications`, summed over the
groups as blavaan: the chi-square for continuous items, the pairwise G^2 for ordinal ones)
and the fit indices of
:mod:`bayes_sor.checks.fit_indices` (pD = p_loo). What has no defined discrepancy is left
empty, the reason in the ``notes`` column: BRMSEA and BCFI of ordinal items (they are
chi-square based, as ``ppc``'s); the PPP of mixed ordinal and continuous items (``ppc`` has no
discrepancy for them); PPP, BRMSEA and BCFI of a latent interaction (its chi-square and
replications are those of the normal approximation of the implied moments: they would judge
that approximation, not the model fitted).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.checks.fit_indices import fit_indices
from bayes_sor.checks.loglik import loglik_kind, loglik_tree, loo, pointwise_loglik
from bayes_sor.checks.ppc import group_replications, observed_scale
from bayes_sor.checks.predictive import thin
from bayes_sor.errors import BayesSORError
from bayes_sor.files import write_atomic
from bayes_sor.report.document import markdown_table
from bayes_sor.report.run_report import LADDER_FILE, ladder_notes, step_verdicts
from bayes_sor.runs.fit import FitResult, fit, read_model
from bayes_sor.runs.rundir import Run, run_from_tree, write_csv
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.partable import ParTable, build_partable

#: the ladder: each step's ``group.equal`` kinds (continuous items; :func:`ladder_steps`)
STEPS = {
    "configural": [],
    "metric": ["loadings"],
    "scalar": ["loadings", "intercepts"],
    "strict": ["loadings", "intercepts", "residuals"],
}
#: draws used for the PPP and the fit indices (thinned evenly from the posterior)
MAX_DRAWS = 1000
#: the fit indices' interval (blavaan's summary: 90%)
INDEX_CI = 0.9
COLUMNS = [
    "step",
    "group.equal",
    "n_free",
    "ppp",
    "brmsea",
    "brmsea.ci.lower",
    "brmsea.ci.upper",
    "bcfi",
    "bcfi.ci.lower",
    "bcfi.ci.upper",
    "elpd_loo",
    "se",
    "p_loo",
    "elpd_diff",
    "dse",
    "verdict",
    "max_r_hat",
    "min_ess_bulk",
    "loglik",
    "loglik.mc_se",
    "notes",
]
#: why a column is empty (the ``notes`` column)
NO_INDICES_ORDINAL = "BRMSEA/BCFI: chi-square based, defined for continuous items only (as ppc)"
NO_PPP_MIXED = "PPP: no discrepancy for mixed ordinal and continuous items (as ppc)"
NO_FIT_INTERACTION = (
    "PPP, BRMSEA/BCFI: a latent interaction's chi-square and replications are the normal "
    "approximation's, which they would judge instead of the model"
)


def ladder_steps(partable: ParTable) -> dict[str, list[str]]:
    """Each step's ``group.equal`` kinds for this model: :data:`STEPS`, with thresholds in
    place of intercepts for ordinal items (intercepts kept for continuous ones)."""
    if not partable.ordinal_items():
        return STEPS
    continuous = set(partable.indicators) - set(partable.ordinal_items())
    scalar = ["loadings", "thresholds"] + (["intercepts"] if continuous else [])
    return {
        "configural": [],
        "metric": ["loadings"],
        "scalar": scalar,
        "strict": [*scalar, "residuals"],
    }


def step_run(name: str, result: FitResult) -> Run:
    """A step's fit (in memory) as a run, read as a saved one would be."""
    return run_from_tree(Path(name), result.idata, partable=result.partable)


def step_measures(run: Run, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """One step's PPP, BRMSEA / BCFI (mean and interval) and LOO, and its pointwise ELPD;
    measures without a defined discrepancy are left out, their reason in ``notes``."""
    kind, why = loglik_kind(run)
    if kind is None:
        raise BayesSORError(f"the invariance ladder compares the steps by LOO, unavailable: {why}")
    ll = pointwise_loglik(run, kind)
    elpd = loo(loglik_tree(run, ll))
    row = {
        "elpd_loo": float(elpd.elpd),
        "se": float(elpd.se),
        "p_loo": float(elpd.p),
        "loglik": kind,
        "loglik.mc_se": ll.attrs.get("mc_se_mean", np.nan),
        "notes": "",
    }
    if run.partable.interactions:
        row["notes"] = NO_FIT_INTERACTION
        return row, np.asarray(elpd.elpd_i).ravel()
    draws = run.draws[thin(len(run.draws), MAX_DRAWS)]
    groups = group_replications(run, draws, rng)
    scales = {observed_scale(group)[1] for _, group, _ in groups}
    notes = []
    if "mixed" in scales:
        notes.append(NO_PPP_MIXED)
    else:
        d_obs = sum(reps.d_obs for _, _, reps in groups)
        d_rep = sum(reps.d_rep for _, _, reps in groups)
        row["ppp"] = float(np.mean(d_rep >= d_obs))
    if scales == {"continuous"}:
        indices, _ = fit_indices(run, d_obs, float(elpd.p), rng)
        for name in ("brmsea", "bcfi"):
            lo, hi = np.quantile(indices[name], [(1 - INDEX_CI) / 2, (1 + INDEX_CI) / 2])
            row |= {name: indices[name].mean(), f"{name}.ci.lower": lo, f"{name}.ci.upper": hi}
    else:
        notes.append(NO_INDICES_ORDINAL)
    row["notes"] = "; ".join(notes)
    return row, np.asarray(elpd.elpd_i).ravel()


def ladder_table(steps: dict[str, FitResult], seed: int = 0) -> pd.DataFrame:
    """One row per step: PPP, BRMSEA and BCFI, ELPD (SE), the ELPD difference to the step
    before (SE) and the verdict, with the step's convergence."""
    rng = np.random.default_rng(seed)
    rows, before = [], None
    for name, result in steps.items():
        measures, pointwise = step_measures(step_run(name, result), rng)
        row = {
            "step": name,
            "group.equal": ",".join(result.partable.options.get("group.equal") or []) or "none",
            "n_free": result.partable.n_free,
            **measures,
            "elpd_diff": np.nan,
            "dse": np.nan,
            "verdict": "baseline",
            "max_r_hat": result.diagnostics.max_r_hat,
            "min_ess_bulk": result.diagnostics.min_ess_bulk,
        }
        if before is not None:
            diff = pointwise - before
            row["elpd_diff"] = float(diff.sum())
            row["dse"] = float(np.sqrt(len(diff)) * diff.std(ddof=1))
            row["verdict"] = verdict(row["elpd_diff"], row["dse"])
        rows.append(row)
        before = pointwise
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(diff: float, dse: float) -> str:
    """A step holds unless its constraints cost more than 2 SE of ELPD."""
    if diff >= -2 * dse:
        return "holds"
    return f"fails: the constraints cost {-diff:.1f} ELPD (> 2 x SE {dse:.1f})"


def summary_text(table: pd.DataFrame, group: str, labels: list[str]) -> str:
    """The ladder as Markdown: the table and each step's verdict."""
    lines = [
        f"# Measurement invariance across {group} ({', '.join(labels)})",
        "",
        markdown_table(table, digits=3),
        "",
    ]
    if table.brmsea.notna().any():
        lines.append(
            f"BRMSEA and BCFI: posterior means and {INDEX_CI:.0%} intervals (blavaan's "
            "blavFitIndices for multiple groups; pD = p_loo)."
        )
    if (table.loglik == "marginal_is").any():
        lines.append(
            "LOO: each respondent's marginal log-likelihood with the latent scores integrated "
            "out by importance sampling (loglik.mc_se: its mean Monte Carlo standard error per "
            "respondent and draw, nats)."
        )
    lines += ladder_notes(table)
    lines.append("")
    lines += [f"- {v}" for v in step_verdicts(table)]
    lines.append("")
    return "\n".join(lines)


def run_ladder(
    model: str | Path,
    data: str | Path | pd.DataFrame,
    group: str,
    settings: SamplerSettings,
    identification: str | None = None,
    steps: list[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Fit each step (:func:`ladder_steps`, or the ``steps`` named): :func:`ladder_table` and
    the group labels. Ordinal items and latent interactions keep their latent scores (the
    proposals of their marginal log-likelihood)."""
    steps = steps or list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise BayesSORError(f"unknown invariance step(s) {unknown}; the steps are {list(STEPS)}")
    text = read_model(model)
    probe = build_partable(text, identification)
    kinds = ladder_steps(probe)
    fits = {
        name: fit(
            text,
            data,
            group=group,
            group_equal=kinds[name],
            identification=identification,
            settings=settings,
            save_latent=bool(probe.ordinal_items() or probe.interactions),
        )
        for name in steps
    }
    return ladder_table(fits, settings.seed), next(iter(fits.values())).partable.groups


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor invariance MODEL --data CSV --group COLUMN``."""
    p = sub.add_parser("invariance", help="measurement invariance ladder across groups")
    p.add_argument("model", type=Path, help="lavaan-syntax model file (.lav)")
    p.add_argument("--data", type=Path, required=True, help="CSV of item answers")
    p.add_argument("--group", required=True, help="data column splitting the respondents")
    p.add_argument("--out", type=Path, help="folder for invariance.csv and invariance.md")
    p.add_argument("--steps", help="comma-separated steps (default all four)")
    p.add_argument("--identification", choices=["std.lv", "marker"])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--seed", type=int, default=20261124)
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    settings = SamplerSettings(
        chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed, progressbar=False
    )
    settings.validate()
    steps = [s.strip() for s in args.steps.split(",")] if args.steps else None
    table, labels = run_ladder(
        args.model, args.data, args.group, settings, args.identification, steps
    )
    text = summary_text(table, args.group, labels)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(table, args.out / LADDER_FILE)
        write_atomic(args.out / "invariance.md", lambda p: p.write_text(text))
    print(text)
    return 0
