"""Report figures: effects forest plot, conditional (indirect) effects along a moderator with the
Johnson-Neyman-style region, and rank plots of the worst-mixing parameters.

Every function returns a matplotlib ``Figure`` built without pyplot (no global state, works
under any backend, including Agg on a server); :func:`save_png` writes it atomically.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.files import write_atomic
from bayes_sor.posterior.estimates import posterior_names
from bayes_sor.spec.matrices import implied_moments, representation
from bayes_sor.spec.partable import ParTable, row_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: effect kinds in the forest plot, in order, with their colours
FOREST_KINDS = {
    "direct": "#1f3b73",
    "indirect": "#c0392b",
    "total_indirect": "#d68910",
    "total": "#117a65",
}
#: the moderator grid of conditional-effect plots, in SDs of the latent moderator
Z_GRID = np.linspace(-2.5, 2.5, 101)
#: posterior probability that defines the Johnson-Neyman-style region
JN_PROB = 0.95
RANK_TITLE_PT = 12  # rank-plot panel titles, in points


def write_readable(path: Path, writer: Callable[[Path], None]) -> Path:
    """Write through a temporary file (a crash never leaves half a file), then give the file
    the usual permissions (the temporary file is private to its owner)."""
    write_atomic(path, writer)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    return path


def save_png(fig: Figure, path: Path, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG, atomically, and release it."""
    write_readable(
        path,
        lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white"),
    )
    if fig.canvas.manager is not None:  # made through pyplot (ArviZ's plots): unregister it
        # pyplot only for figures made through it; ours are made without it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


# ---- forest plot ---------------------------------------------------------------------------


def forest_plot(
    effects: pd.DataFrame, interval: str = "95% interval", quantity: str = "effect"
) -> Figure | None:
    """Posterior mean and interval of every direct, indirect and total effect, by kind;
    ``quantity`` names what the x axis shows."""
    rows = effects[effects.kind.isin(FOREST_KINDS) & (effects.moderator_value == "")]
    if rows.empty:
        return None
    groups = [(kind, rows[rows.kind == kind]) for kind in FOREST_KINDS]
    groups = [(kind, g) for kind, g in groups if len(g)]
    n_lines = len(rows) + len(groups)
    # matplotlib (~0.5 s) only when a figure is drawn: `fit --no-report` never draws
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 0.9 + 0.27 * n_lines))
    ax = fig.add_subplot()
    y, ticks, labels = 0.0, [], []
    for kind, group in groups:
        ax.text(
            0.0,
            y,
            kind.replace("_", " ") + " effects",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontweight="bold",
            fontsize=9,
            color=FOREST_KINDS[kind],
        )
        y -= 1
        cells = group[["effect", "mean", "ci.lower", "ci.upper"]]
        for effect, mean, lower, upper in cells.itertuples(index=False, name=None):
            ax.plot([lower, upper], [y, y], color=FOREST_KINDS[kind], linewidth=2)
            ax.plot(mean, y, "o", color=FOREST_KINDS[kind], markersize=5)
            ticks.append(y)
            labels.append(effect)
            y -= 1
    ax.axvline(0, color="#555555", linewidth=0.8, linestyle=":")
    ax.set_yticks(ticks, labels, fontsize=8.5)
    ax.set_ylim(y + 0.3, 0.7)
    ax.set_xlabel(f"{quantity} (posterior mean and {interval}; model scale)")
    ax.grid(axis="x", color="#eeeeee")
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.tick_params(axis="y", length=0)
    fig.tight_layout()
    return fig


def group_differences_plot(effects: pd.DataFrame, interval: str = "95% interval") -> Figure | None:
    """The forest of a multiple-group run's differences between groups (``effects.csv`` rows
    whose ``group`` is ``B - A``), each effect labelled with its groups."""
    if "group" not in effects.columns:
        return None
    rows = effects[effects.group.fillna("").str.contains(" - ", regex=False)]
    labelled = rows.assign(effect=rows.effect + "  [" + rows.group + "]")
    return forest_plot(labelled, interval, "difference between groups")


# ---- conditional effects along a moderator -------------------------------------------------


@dataclass(frozen=True)
class ConditionalCurve:
    """A (conditional) effect along the moderator's grid ``z`` (in SDs of the moderator)."""

    path: str
    moderator: str
    kind: str  # "conditional direct" (a moderated path itself) or "conditional indirect"
    z: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_positive: np.ndarray

    def regions(
        self, prob: float = JN_PROB
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Moderator ranges where P(effect > 0) > prob, and where P(effect < 0) > prob."""
        return (_runs(self.z, self.p_positive > prob), _runs(self.z, self.p_positive < 1 - prob))


def _runs(z: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous stretches of ``z`` where ``mask`` holds, as (first, last) grid values."""
    out = []
    for value, group in itertools.groupby(zip(z, mask, strict=True), key=lambda p: p[1]):
        if value:
            points = [p[0] for p in group]
            out.append((float(points[0]), float(points[-1])))
    return out


def describe_regions(curve: ConditionalCurve, prob: float = JN_PROB) -> str:
    """The Johnson-Neyman-style regions in words."""
    positive, negative = curve.regions(prob)

    def words(sign: str, runs: list[tuple[float, float]]) -> str:
        where = (
            " and ".join(f"from {lo:+.2f} to {hi:+.2f} SD" for lo, hi in runs)
            if runs
            else "at no value on the grid"
        )
        return f"P(effect {sign} 0) > {prob:.2f} for {curve.moderator} {where}"

    span = f"{curve.z[0]:+.1f} to {curve.z[-1]:+.1f} SD"
    return f"{words('>', positive)}; {words('<', negative)} (grid {span})"


def moderated_paths(partable: ParTable, effects: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(path, moderator, kind)`` for every moderated path and moderated indirect path."""
    out = [
        (f"{first} -> {outcome}", w, "conditional direct")
        for outcome, first, w in partable.interactions
    ]
    imm = effects[effects.kind == "index_moderated_mediation"]
    out += [
        (r.effect, r.moderator_value, "conditional indirect") for r in imm.itertuples(index=False)
    ]
    return out


def conditional_curves(
    partable: ParTable,
    par: np.ndarray,
    moderated: list[tuple[str, str, str]],
    ci_prob: float = 0.95,
    z: np.ndarray = Z_GRID,
) -> list[ConditionalCurve]:
    """For each ``(path, moderator, kind)`` of :func:`moderated_paths`, the product of the
    path's coefficients, each moderated edge at b + d w, along ``z``.

    ``w = z * sd(W)`` with the model-implied SD of the latent moderator per draw, as for the
    conditional indirect effects in ``effects.csv``; ``par`` is (chain, draw, param).
    """
    names = partable.names
    draws = par.reshape(-1, par.shape[-1])
    rep = representation(partable)
    latent_sd = np.sqrt(np.diagonal(implied_moments(rep, draws).latent_cov, axis1=-2, axis2=-1))
    tail = (1 - ci_prob) / 2
    curves = []
    for path, moderator, kind in moderated:
        w = latent_sd[:, [rep.latents.index(moderator)]] * z[None, :]
        value = np.ones((len(draws), len(z)))
        for cause, outcome in itertools.pairwise(p.strip() for p in path.split("->")):
            coefficient = np.broadcast_to(
                draws[:, [names.index(row_name(outcome, "~", cause))]], value.shape
            ).copy()
            product = row_name(outcome, "~", f"{cause}:{moderator}")
            if product in names:
                coefficient += draws[:, [names.index(product)]] * w
            value *= coefficient
        lower, upper = np.quantile(value, [tail, 1 - tail], axis=0)
        curves.append(
            ConditionalCurve(
                path, moderator, kind, z, value.mean(axis=0), lower, upper, (value > 0).mean(axis=0)
            )
        )
    return curves


def conditional_plot(
    curves: list[ConditionalCurve], interval: str = "95% interval", prob: float = JN_PROB
) -> Figure | None:
    """One panel per curve: mean, credible band, and the shaded Johnson-Neyman-style region."""
    if not curves:
        return None
    ncols = min(2, len(curves))
    nrows = -(-len(curves) // ncols)
    # matplotlib (~0.5 s) only when a figure is drawn: `fit --no-report` never draws
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * ncols, 3.6 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, curve in zip(axes, curves, strict=False):
        _conditional_panel(ax, curve, interval, prob)
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=8.5)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return fig


def _conditional_panel(ax: Axes, curve: ConditionalCurve, interval: str, prob: float) -> None:
    positive, negative = curve.regions(prob)
    for k, (lo, hi) in enumerate(positive):
        ax.axvspan(
            lo,
            hi,
            color="#d5f5e3",
            zorder=0,
            label=f"P(effect > 0) > {prob:.2f}" if k == 0 else None,
        )
    for k, (lo, hi) in enumerate(negative):
        ax.axvspan(
            lo,
            hi,
            color="#fadbd8",
            zorder=0,
            label=f"P(effect < 0) > {prob:.2f}" if k == 0 else None,
        )
    ax.fill_between(
        curve.z, curve.lower, curve.upper, color="#1f3b73", alpha=0.22, linewidth=0, label=interval
    )
    ax.plot(curve.z, curve.mean, color="#1f3b73", linewidth=1.8, label="posterior mean")
    ax.axhline(0, color="#555555", linewidth=0.8)
    for sd in (-1, 0, 1):
        ax.axvline(sd, color="#999999", linewidth=0.6, linestyle=":")
    ax.set_title(f"{curve.kind}: {curve.path}", fontsize=10)
    ax.set_xlabel(f"moderator {curve.moderator} (SDs from its mean)")
    ax.set_ylabel("effect (model scale)")
    ax.spines[["top", "right"]].set_visible(False)


# ---- rank plots ----------------------------------------------------------------------------


def worst_rows(estimates: pd.DataFrame, n: int = 6) -> pd.DataFrame:
    """The ``n`` free parameters that mix worst: highest R-hat first, then lowest bulk ESS."""
    free = estimates[(estimates.free > 0) & estimates.r_hat.notna()]
    return free.sort_values(["r_hat", "ess_bulk"], ascending=[False, True]).head(n)


def worst_parameters(estimates: pd.DataFrame, n: int = 6) -> list[str]:
    """Posterior names (``lhs op rhs`` without spaces; a later group's with its ``.g<k>``) of
    :func:`worst_rows`."""
    names = pd.Series(posterior_names(estimates), index=estimates.index)
    return names[worst_rows(estimates, n).index].tolist()


def rank_plot(idata: xr.DataTree, params: list[str]) -> Figure | None:
    """ArviZ's fractional-rank Delta-ECDF plots (one panel per parameter, chains as lines)."""
    if not params:
        return None
    # ArviZ's plots import matplotlib's pyplot (~1 s): only when a rank plot is drawn
    import arviz_plots as azp
    from arviz_base.labels import NoVarLabeller

    ncols = min(3, len(params))
    nrows = -(-len(params) // ncols)
    pc = azp.plot_rank(
        idata,
        var_names=["par"],
        coords={"param": params},
        backend="matplotlib",
        labeller=NoVarLabeller(),
        col_wrap=ncols,
        # draws thinned to about their effective sample size: the same test
        # and picture, at a third of the cost of all draws (1 s of a fit)
        thin=True,
        # a shared, visible y axis: panels must be comparable in size
        visuals={"remove_axis": False},
        figure_kwargs={
            "figsize": (3.6 * ncols, 2.9 * nrows + 0.6),
            "layout": "constrained",
            "sharey": True,
        },
    )
    fig = pc.viz["figure"].item()
    # readable where the figure is scaled to a page's text column (about 900 px)
    for ax in fig.axes:
        ax.title.set_fontsize(RANK_TITLE_PT)
        ax.tick_params(labelsize=9)
        ax.xaxis.label.set_fontsize(10)
    fig.suptitle(
        "Fractional-rank ECDF minus uniform, one line per chain, draws thinned to "
        "about their effective sample size (ideal: flat near 0).\n"
        "p: ArviZ's multi-chain uniformity test; small p and highlighted points mean "
        "the chains disagree",
        fontsize=RANK_TITLE_PT - 1,
    )
    return fig
