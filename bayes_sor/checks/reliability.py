"""Reliability and validity of the constructs: ``python -m bayes_sor reliability RUN_DIR``.

Per posterior draw, from the model-implied moments: composite reliability (omega: the share of
the item sum's implied variance due to its construct), average variance extracted (AVE: mean
squared standardised loading), squared latent correlations against both constructs' AVE
(Fornell-Larcker), and the heterotrait-monotrait ratio (HTMT, Henseler et al. 2015) of the
implied item correlations. Sample Cronbach's alpha and sample HTMT come from the data (with
missing answers: from the saturated model's EM covariance matrix, which uses every answer). Ordinal
items are measured on their latent-response scale (as lavaan's theta parameterisation).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.checks.predictive import correlations
from bayes_sor.checks.result import CheckResult, add_check_command
from bayes_sor.errors import BayesSORError
from bayes_sor.posterior.summary import summarize
from bayes_sor.report.document import markdown_table
from bayes_sor.runs.rundir import Run
from bayes_sor.spec.matrices import implied_moments

HTMT_MAX = 0.85
OMEGA_MIN = 0.7
AVE_MIN = 0.5
COLUMNS = [
    "measure",
    "construct",
    "with",
    "mean",
    "median",
    "sd",
    "ci.lower",
    "ci.upper",
    "sample",
    "criterion",
    "p_criterion",
]


def construct_items(run: Run) -> dict[str, np.ndarray]:
    """Positions of the items loading on each construct (observed structural variables, their
    own single indicator, are not constructs and are left out)."""
    rep = run.rep
    items = {f: np.flatnonzero(rep.lambda_[:, i] != rep.zero) for i, f in enumerate(rep.latents)}
    return {f: idx for f, idx in items.items() if [rep.items[j] for j in idx] != [f]}


def htmt(corr: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean heterotrait correlation over the geometric mean of the two monotrait means."""

    def mono(idx: np.ndarray) -> np.ndarray:
        if len(idx) < 2:
            return np.full(corr.shape[:-2], np.nan)
        rows, cols = np.triu_indices(len(idx), k=1)
        return corr[..., idx[rows], idx[cols]].mean(axis=-1)

    hetero = corr[..., a[:, None], b[None, :]].mean(axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        return hetero / np.sqrt(mono(a) * mono(b))


def cronbach_alpha(cov: np.ndarray) -> float:
    """Cronbach's alpha of an item set from its covariance matrix (the divisor cancels)."""
    k = cov.shape[0]
    if k < 2:
        return np.nan
    return float(k / (k - 1) * (1 - np.trace(cov) / cov.sum()))


def _draws(run: Run) -> dict[tuple[str, str, str], np.ndarray]:
    """Per-draw omega, AVE, squared latent correlation and HTMT, keyed (measure, f, g)."""
    m = implied_moments(run.rep, run.par)
    corr = correlations(m.item_cov)
    latent_corr = correlations(m.latent_cov)
    items = construct_items(run)
    out: dict[tuple[str, str, str], np.ndarray] = {}
    constructs = list(items)
    for f in constructs:
        i, idx = run.rep.latents.index(f), items[f]
        lam, phi = m.lambda_[..., idx, i], m.latent_cov[..., i, i]
        total = m.item_cov[..., idx[:, None], idx[None, :]].sum(axis=(-2, -1))
        out["omega", f, ""] = lam.sum(axis=-1) ** 2 * phi / total
        item_var = m.item_var[..., idx]
        out["ave", f, ""] = (lam**2 * phi[..., None] / item_var).mean(axis=-1)
    for k, f in enumerate(constructs):
        for g in constructs[k + 1 :]:
            i, j = run.rep.latents.index(f), run.rep.latents.index(g)
            out["latent_r2", f, g] = latent_corr[..., i, j] ** 2
            out["htmt", f, g] = htmt(corr, items[f], items[g])
    return out


def _criteria(draws: dict[tuple[str, str, str], np.ndarray]) -> dict[tuple, tuple[str, float]]:
    """(criterion text, posterior probability it holds) for each quantity."""
    out = {}
    for (measure, f, g), values in draws.items():
        if measure == "omega":
            out[measure, f, g] = (f"omega > {OMEGA_MIN}", float(np.mean(values > OMEGA_MIN)))
        elif measure == "ave":
            out[measure, f, g] = (f"AVE > {AVE_MIN}", float(np.mean(values > AVE_MIN)))
        elif measure == "latent_r2":
            smaller = np.minimum(draws["ave", f, ""], draws["ave", g, ""])
            out[measure, f, g] = (
                "Fornell-Larcker: r^2 < AVE of both",
                float(np.mean(values < smaller)),
            )
        elif measure == "htmt":
            holds = np.mean(values < HTMT_MAX) if np.isfinite(values).all() else np.nan
            out[measure, f, g] = (f"HTMT < {HTMT_MAX}", float(holds))
    return out


def _sample_values(run: Run) -> dict[tuple[str, str, str], float]:
    items = construct_items(run)
    corr = correlations(run.cov)
    out = {("alpha", f, ""): cronbach_alpha(run.cov[np.ix_(idx, idx)]) for f, idx in items.items()}
    constructs = list(items)
    for k, f in enumerate(constructs):
        for g in constructs[k + 1 :]:
            out["htmt", f, g] = float(htmt(corr, items[f], items[g]))
    return out


def reliability(run: Run, ci: float = 0.95) -> pd.DataFrame:
    """The ``reliability.csv`` table: posterior summaries, sample values and criteria; for a
    multiple-group run each group's, from its own implied moments and its own answers (a
    ``group`` column first)."""
    if not run.partable.groups:
        return _reliability(run, ci)
    return pd.concat(
        [_reliability(group, ci).assign(group=label) for label, group in run.by_group()],
        ignore_index=True,
    )[["group", *COLUMNS]]


def _reliability(run: Run, ci: float) -> pd.DataFrame:
    draws = _draws(run)
    keys = list(draws)
    stacked = xr.DataArray(
        np.stack([draws[k] for k in keys], axis=-1),
        dims=("chain", "draw", "quantity"),
        coords={"quantity": [f"{m}:{f}:{g}" for m, f, g in keys]},
    )
    summary = summarize(stacked, ci).reset_index(drop=True)
    table = pd.DataFrame(keys, columns=["measure", "construct", "with"])
    table = pd.concat([table, summary[["mean", "median", "sd", "ci.lower", "ci.upper"]]], axis=1)
    sample = _sample_values(run)
    criteria = _criteria(draws)
    table["sample"] = [sample.get(k, np.nan) for k in keys]
    table["criterion"] = [criteria[k][0] for k in keys]
    table["p_criterion"] = [criteria[k][1] for k in keys]
    alphas = pd.DataFrame(
        [
            {
                "measure": "alpha",
                "construct": f,
                "with": "",
                "sample": v,
                "criterion": "",
                "p_criterion": np.nan,
            }
            for (measure, f, _), v in sample.items()
            if measure == "alpha"
        ]
    )
    return pd.concat([table, alphas], ignore_index=True)[COLUMNS]


def report_section(table: pd.DataFrame, ci: float, ordinal: bool, incomplete: bool = False) -> str:
    """The "Reliability and validity" section of ``report.md``; ``incomplete``: the data have
    missing answers (the sample alphas then come from the EM covariance matrix)."""

    grouped = "group" in table.columns
    keys = ["group", "construct", "with"] if grouped else ["construct", "with"]

    def pick(measure: str) -> pd.DataFrame:
        return table[table.measure == measure].set_index(keys)

    omega, ave, alpha = pick("omega"), pick("ave"), pick("alpha")
    rows = []
    for key, o in omega.iterrows():
        a = ave.loc[key]
        rows.append(
            {
                **({"group": key[0]} if grouped else {}),
                "construct": key[-2],
                "omega": o["mean"],
                "omega.ci": f"[{o['ci.lower']:.2f}, {o['ci.upper']:.2f}]",
                "AVE": a["mean"],
                "AVE.ci": f"[{a['ci.lower']:.2f}, {a['ci.upper']:.2f}]",
                "alpha (sample)": alpha.loc[key, "sample"],
            }
        )
    pairs = table[table.measure.isin(["htmt", "latent_r2"])]
    weak = pairs[pairs.p_criterion < 0.95]
    lines = [
        "## Reliability and validity",
        "",
        f"Posterior means with {ci:.0%} intervals (`reliability.csv`); omega and AVE from "
        "the model-implied moments"
        + (" on the latent-response scale of the ordinal items" if ordinal else "")
        + "."
        + (
            " The data have missing answers: sample alpha is computed from the saturated "
            "model's ML (EM) covariance matrix, which uses every answer given."
            if incomplete
            else ""
        ),
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]
    if len(weak):
        lines.append(
            "Discriminant validity is uncertain (posterior probability < .95) for: "
            + "; ".join(
                (f"[{r.group}] " if grouped else "")
                + f"{r.construct} / {r.with_}: P({r.criterion}) = {r.p_criterion:.2f}"
                for r in weak.rename(columns={"with": "with_"}).itertuples()
            )
        )
    else:
        lines.append(
            f"Every pair of constructs meets HTMT < {HTMT_MAX} and Fornell-Larcker "
            "with posterior probability >= .95."
        )
    return "\n".join([*lines, ""])


def reliability_check(run: Run, ci: float = 0.95) -> CheckResult:
    """The check as a result: ``reliability.csv`` and the report section (nothing written)."""
    table = reliability(run, ci)
    incomplete = run.y is not None and bool(np.isnan(run.y).any())
    text = report_section(table, ci, bool(run.partable.ordinal_items()), incomplete)
    pairs = table[table.measure.isin(["htmt", "latent_r2"])]
    cols = [c for c in ("group",) if c in table.columns]
    cols += [
        "measure",
        "construct",
        "with",
        "mean",
        "ci.lower",
        "ci.upper",
        "sample",
        "p_criterion",
    ]
    console = (
        table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
        + f"\n\nwrote {run.path}/reliability.csv and a section of report.md and "
        "report.html"
    )
    return CheckResult(
        "reliability",
        text,
        tables={"reliability.csv": table},
        passed=bool((pairs.p_criterion >= 0.95).all()),
        console=console,
    )


def _validate(args: argparse.Namespace) -> None:
    if not 0 < args.ci < 1:
        raise BayesSORError("--ci must lie between 0 and 1, e.g. 0.95")


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor reliability RUN_DIR``."""
    add_check_command(
        sub,
        "reliability",
        "omega, AVE, HTMT and Fornell-Larcker of a run",
        lambda run, args: [reliability_check(run, args.ci)],
        declare=lambda p: p.add_argument(
            "--ci", type=float, default=0.95, help="interval probability (0.95)"
        ),
        validate=_validate,
    )
