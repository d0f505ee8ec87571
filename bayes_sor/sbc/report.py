"""SBC results: ``ranks.csv``, uniformity tests (``sbc_summary.csv``), ECDF plot, ``sbc.md``.

The test is arviz-stats' ``pot_c`` uniformity test (Tesso et al. 2026, the default of
``arviz_plots.plot_ecdf_pit``): measured here at 100 simulations it rejects dispersion errors
(PIT ~ Beta(0.8, 0.8)) 3x as often as Kolmogorov-Smirnov, at a size of about 6 % for a 5 %
level. Holm's step-down correction makes the overall verdict hold its level over all quantities
whatever their dependence. The ECDF-difference bands are the simultaneous 95 % bands of
Säilynoja et al. (2022) from ``arviz_stats.ecdf_utils.ecdf_pit``; they are drawn here because
``plot_ecdf_pit``'s band method fails in arviz-plots 1.3.2 (TypeError on ``np.linspace``) and
its default method draws no bands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.files import write_atomic

ALPHA = 0.05
MIN_SIMS = 20
TEST = "pot_c"
RECORD_COLUMNS = [
    "sim",
    "seed",
    "L",
    "thin",
    "ess_min",
    "divergences",
    "fit_seconds",
    "sim_seconds",
    "cpu_seconds",
    "error",
]
MAX_PANELS = 48


@dataclass(frozen=True)
class Verdict:
    """The overall SBC verdict and the counts behind it."""

    calibrated: bool
    text: str
    n_done: int
    n_failed: int
    n_flagged: int


def ranks_frame(records: list[dict], quantities: list[str]) -> pd.DataFrame:
    """One row per simulation (failed ones included, with their error), one column per
    quantity."""
    rows = []
    for r in sorted(records, key=lambda r: r["sim"]):
        row = {c: r.get(c) for c in RECORD_COLUMNS}
        row.update({q: r["ranks"].get(q) for q in quantities})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS + quantities)
    frame[quantities] = frame[quantities].astype("Int64")
    return frame


def pit_values(ranks: pd.DataFrame, quantities: list[str], seed: int) -> pd.DataFrame:
    """Randomised PIT values (rank + U) / (L + 1) of the successful simulations.

    Ranks are discrete on 0..L and L differs between simulations; adding U(0, 1) makes them
    exactly continuous-uniform under calibration, which the test and the bands assume. U comes
    from (master seed, simulation), so a resumed run gets the same values.
    """
    ok = ranks[ranks.error.fillna("") == ""]
    jitter = np.array(
        [np.random.default_rng([seed, int(sim), 2]).uniform(size=len(quantities)) for sim in ok.sim]
    ).reshape(len(ok), len(quantities))
    values = (ok[quantities].to_numpy(dtype=float) + jitter) / (
        ok.L.to_numpy(dtype=float)[:, None] + 1
    )
    return pd.DataFrame(values, columns=quantities, index=ok.sim.to_numpy())


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (valid under any dependence between the tests)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def kind_of_quantity(name: str) -> str:
    """``indirect: X -> M -> Y`` -> ``indirect``; a parameter row name -> ``parameter``."""
    return name.split(":", 1)[0] if ": " in name else "parameter"


def summary_frame(pit: pd.DataFrame) -> tuple[pd.DataFrame, Verdict]:
    """Per-quantity uniformity test with Holm-adjusted verdicts, plus an overall row."""
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    from arviz_stats.base import array_stats

    quantities = list(pit.columns)
    n = len(pit)
    if n >= 2:
        p = np.atleast_1d(
            array_stats.uniformity_test(pit.to_numpy().T, axis=-1, method=TEST)[0]
        ).astype(float)
    else:
        p = np.full(len(quantities), np.nan)
    adjusted = holm(np.nan_to_num(p, nan=1.0))
    enough = n >= MIN_SIMS
    verdicts = np.where(
        not enough, "too few simulations", np.where(adjusted < ALPHA, "miscalibrated", "ok")
    )
    table = pd.DataFrame(
        {
            "quantity": quantities,
            "kind": [kind_of_quantity(q) for q in quantities],
            "n_sims": n,
            "p_value": p,
            "p_holm": adjusted,
            "test": TEST,
            "verdict": verdicts,
        }
    )
    flagged = int((verdicts == "miscalibrated").sum())
    calibrated = enough and flagged == 0
    text = (
        "calibrated"
        if calibrated
        else "miscalibrated"
        if flagged
        else "undecided (too few simulations)"
    )
    overall = {
        "quantity": "ALL",
        "kind": "overall",
        "n_sims": n,
        "p_value": float(np.nanmin(p)) if np.isfinite(p).any() else np.nan,
        "p_holm": float(adjusted.min()) if len(adjusted) else np.nan,
        "test": f"holm({TEST})",
        "verdict": text,
    }
    table = pd.concat([table, pd.DataFrame([overall])], ignore_index=True)
    return table, Verdict(calibrated, text, n, 0, flagged)


def plot_ecdf(pit: pd.DataFrame, summary: pd.DataFrame, path: Path) -> list[str]:
    """ECDF-difference panels with simultaneous 95 % bands; returns the quantities shown.

    Large models have hundreds of quantities: the panels show the lowest p-values first, at
    most :data:`MAX_PANELS` of them.
    """
    # matplotlib: the Agg backend (no display) is chosen when a figure is drawn, not on import;
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    import matplotlib
    from arviz_stats.ecdf_utils import ecdf_pit

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = summary[summary.kind != "overall"].sort_values("p_value", na_position="last")
    shown = list(tests.quantity[:MAX_PANELS])
    n = len(pit)
    cols = min(4, max(1, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.4 * rows), sharex=True, sharey=True, squeeze=False
    )
    if n >= 2:
        x, _, lower, upper = ecdf_pit(
            np.linspace(0, 1, n), 1 - ALPHA, 1000, rng=np.random.default_rng(214)
        )
    for ax, name in zip(axes.flat, shown, strict=False):
        row = tests.set_index("quantity").loc[name]
        values = np.sort(pit[name].to_numpy())
        if n >= 2:
            ax.fill_between(x, lower - x, upper - x, step="post", color="0.85", lw=0)
        grid = np.concatenate([[0.0], values, [1.0]])
        ax.step(
            grid,
            np.concatenate([[0.0], np.arange(1, n + 1) / n, [1.0]]) - grid,
            where="post",
            color="C3" if row.verdict == "miscalibrated" else "C0",
            lw=1.2,
        )
        ax.axhline(0, color="0.4", lw=0.6, ls="--")
        ax.set_title(f"{name}\np = {row.p_value:.3g}", fontsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_axis_off()
    fig.supxlabel("PIT (normalised rank of the truth)")
    fig.supylabel("ECDF - uniform CDF")
    # fixed margins: tight_layout measures every label and takes seconds for many panels
    fig.subplots_adjust(
        left=0.09,
        right=0.98,
        bottom=0.8 / fig.get_figheight(),
        top=1 - 0.5 / fig.get_figheight(),
        hspace=0.55,
        wspace=0.08,
    )
    write_atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return shown


def markdown(
    config: dict,
    ranks: pd.DataFrame,
    summary: pd.DataFrame,
    verdict: Verdict,
    n_sims: int,
    throughput: float | None,
    shown: list[str],
    priors: dict[str, str],
    warning: str,
) -> str:
    """``sbc.md``: what was run, the verdict, the worst quantities, how to read the plot;
    ``priors``: the priors by kind the truths were drawn from; ``warning``: what is wrong
    with them ("" when nothing is)."""
    ok = ranks[ranks.error.fillna("") == ""]
    failed = ranks[ranks.error.fillna("") != ""]
    tests = summary[summary.kind != "overall"].sort_values("p_value")
    lines = [
        "# Simulation-based calibration",
        "",
        f"**Verdict: {verdict.text}** ({verdict.n_flagged} of {len(tests)} quantities flagged "
        f"at Holm-adjusted p < {ALPHA}; test `{TEST}` on randomised PIT values).",
        "",
        f"- simulations: {len(ok)} fitted, {len(failed)} failed, {n_sims} requested; "
        f"N = {config['nobs']} respondents each, master seed {config['seed']}",
        f"- fitting: {config['likelihood']} likelihood, {config['sampler']}, {config['chains']} "
        f"chain(s) x {config['draws']} draws after {config['tune']} tuning; loading-prior scale "
        f"in the fit x {config['prior_scale_fit']}",
        "- priors (the truths are drawn from them): "
        + ", ".join(f"{kind} `{text}`" for kind, text in priors.items()),
    ]
    if len(ok):
        lines.append(
            f"- ranks among thinned draws: L median {ok.L.median():.0f} (range {ok.L.min():.0f}"
            f"-{ok.L.max():.0f}); min ESS median {ok.ess_min.median():.0f}; simulations with "
            f"divergences: {(ok.divergences > 0).sum()}; fit time median "
            f"{ok.fit_seconds.median():.2f} s"
        )
    if throughput:
        lines.append(f"- throughput this session: {throughput:.1f} simulations per minute")
    if warning:
        lines += ["", f"**Warning:** {warning}"]
    if len(failed):
        lines += ["", "## Failed simulations", "", "| sim | seed | error |", "|---|---|---|"]
        lines += [f"| {r.sim} | {r.seed} | {r.error} |" for r in failed.head(20).itertuples()]
    lines += [
        "",
        "## Lowest p-values",
        "",
        "| quantity | p | Holm p | verdict |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.quantity} | {r.p_value:.3g} | {r.p_holm:.3g} | {r.verdict} |"
        for r in tests.head(10).itertuples()
    ]
    lines += [
        "",
        "## Reading `sbc_ecdf.png`",
        "",
        "Each panel is the ECDF of the truth's normalised rank minus the uniform CDF, with a "
        "simultaneous 95 % band: a calibrated quantity stays inside. A curve that rises then "
        "falls (truth too often in the middle) means posteriors too wide; one that falls then "
        "rises (truth in the tails), too narrow, e.g. an over-confident prior; a curve above "
        "or below zero throughout means bias.",
        f"Panels shown: {len(shown)} of {len(tests)} quantities, lowest p-values first.",
        "",
        "Every simulation's ranks are in `ranks.csv`; rerun the same command to resume or "
        "extend the run (`--sims` larger).",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path,
    config: dict,
    records: list[dict],
    n_sims: int,
    throughput: float | None,
    priors: dict[str, str],
    warning: str,
) -> tuple[pd.DataFrame, pd.DataFrame, Verdict]:
    """Write ``ranks.csv``, ``sbc_summary.csv``, ``sbc_ecdf.png`` and ``sbc.md`` (``priors``,
    ``warning``: see :func:`markdown`)."""
    quantities = next((list(r["ranks"]) for r in records if r["ranks"]), [])
    ranks = ranks_frame(records, quantities)
    write_atomic(out / "ranks.csv", lambda p: ranks.to_csv(p, index=False))
    pit = pit_values(ranks, quantities, config["seed"])
    summary, verdict = summary_frame(pit)
    verdict = replace(verdict, n_failed=int((ranks.error.fillna("") != "").sum()))
    write_atomic(out / "sbc_summary.csv", lambda p: summary.to_csv(p, index=False))
    shown = plot_ecdf(pit, summary, out / "sbc_ecdf.png") if quantities else []
    text = markdown(config, ranks, summary, verdict, n_sims, throughput, shown, priors, warning)
    write_atomic(out / "sbc.md", lambda p: p.write_text(text))
    return ranks, summary, verdict
