"""Report figures on the Agg backend: path diagram layout and styles, forest plot, conditional
effects with the Johnson-Neyman-style region, rank plots; all from fake posteriors (fast)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.patches import Ellipse, FancyArrowPatch
from sem_models import MODERATED

from bayes_sor import figures
from bayes_sor.diagram import layout, path_diagram, structural_edges
from bayes_sor.partable import build_partable

PNG = b"\x89PNG\r\n\x1a\n"


def _estimates(partable, intervals: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """Regression rows of an estimates table with given (mean, lower, upper)."""
    regs = partable.table[partable.table.op == "~"][["lhs", "op", "rhs"]].copy()
    values = [intervals.get(f"{r.lhs}~{r.rhs}", (0.3, 0.1, 0.5)) for r in regs.itertuples()]
    regs[["mean", "ci.lower", "ci.upper"]] = np.array(values)
    return regs


def test_diagram_layout_follows_stimulus_organism_response(root):
    pt = build_partable((root / "models" / "impulse_buying.lav").read_text())
    edges, moderations = structural_edges(pt, _estimates(pt, {}))
    pos = layout(pt, edges, moderations)
    x = {n: p[0] for n, p in pos.items()}
    y = {n: p[1] for n, p in pos.items()}
    assert {x[s] for s in ("PI", "AI", "MI", "SI")} == {0.0}
    assert 0 < x["CT"] < x["IB"]
    assert y["IT"] > max(v for n, v in y.items() if n != "IT")  # moderator above
    assert x["CT"] < x["IT"] < x["IB"]  # ... over the path it moderates


def test_diagram_draws_solid_credible_and_dashed_uncertain_paths():
    pt = build_partable(MODERATED)
    est = _estimates(pt, {"Y~X": (0.02, -0.2, 0.25), "Y~M:W": (0.2, 0.05, 0.35)})
    fig = path_diagram(pt, est)
    ax = fig.axes[0]
    assert sum(isinstance(p, Ellipse) for p in ax.patches) == 4
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 5  # four paths and the moderation arrow onto M -> Y
    dashed = [a for a in arrows if a.get_linestyle() not in ("-", "solid")]
    assert len(dashed) == 1
    labels = {t.get_text() for t in ax.texts}
    assert "0.02 [-0.20, 0.25]" in labels and "M×W: 0.20 [0.05, 0.35]" in labels


def test_diagram_of_a_measurement_model_is_none(root):
    pt = build_partable((root / "models" / "holzinger_swineford.lav").read_text())
    assert path_diagram(pt, pt.table.assign(mean=0.0, **{"ci.lower": 0.0,
                                                          "ci.upper": 0.0})) is None


def test_forest_plot_has_one_row_per_effect_grouped_by_kind(tmp_path):
    effects = pd.DataFrame({
        "effect": ["X -> M", "M -> Y", "X -> M -> Y", "X -> Y", "X -> Y", "X -> M -> Y"],
        "kind": ["direct", "direct", "indirect", "total_indirect", "total",
                 "conditional_indirect"],
        "moderator_value": ["", "", "", "", "", "W=+1SD"],
        "mean": [0.5, 0.4, 0.2, 0.2, 0.3, 0.3], "ci.lower": [0.3, 0.2, 0.1, 0.1, 0.1, 0.1],
        "ci.upper": [0.7, 0.6, 0.3, 0.3, 0.5, 0.5]})
    fig = figures.forest_plot(effects)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["X -> M", "M -> Y", "X -> M -> Y", "X -> Y", "X -> Y"]
    path = figures.save_png(fig, tmp_path / "forest.png")
    assert path.read_bytes().startswith(PNG)
    assert path.stat().st_mode & 0o044  # readable by others, like the run's other files


def _fake_draws(pt, values: dict[str, float], n: int = 400, seed: int = 0) -> np.ndarray:
    """(1 chain, n draws, param): structural paths varying around ``values``, rest fixed."""
    rng = np.random.default_rng(seed)
    params = pt.parameters.reset_index(drop=True)
    base = np.array([values.get(name, r.value if r.free == 0 else
                                {"=~": 0.8, "~1": 0.0, "~~": 0.5}.get(r.op, 0.0))
                     for name, r in zip(pt.names, params.itertuples(), strict=True)])
    par = np.tile(base, (1, n, 1))
    for name in values:
        par[0, :, pt.names.index(name)] += rng.normal(0, 0.05, n)
    return par


def test_conditional_indirect_curve_is_a_times_b_plus_d_w():
    pt = build_partable(MODERATED)
    par = _fake_draws(pt, {"M~X": 0.5, "Y~M": 0.3, "Y~M:W": 0.2, "Y~X": 0.1})
    (curve,) = figures.conditional_curves(pt, par, [("X -> M -> Y", "W", "conditional indirect")])
    a, b, d = (par[0, :, pt.names.index(n)] for n in ("M~X", "Y~M", "Y~M:W"))
    # W is exogenous with variance 1 (std.lv), so w = z
    for z in (-1.0, 0.0, 2.0):
        k = int(np.argmin(np.abs(curve.z - z)))
        assert curve.mean[k] == pytest.approx(np.mean(a * (b + d * curve.z[k])))
        assert curve.upper[k] == pytest.approx(np.quantile(a * (b + d * curve.z[k]), 0.975))
    positive, negative = curve.regions()
    # a > 0 surely, so P(effect > 0) > .95 where (0.3 + 0.2 w) / (0.05 sqrt(1 + w^2)) > 1.645:
    # from w = -0.95 on; P(effect < 0) never exceeds .95 on the grid (at w = -2.5: z = -1.48)
    assert len(positive) == 1 and -1.05 < positive[0][0] < -0.85 and positive[0][1] == 2.5
    assert negative == []
    assert "P(effect > 0) > 0.95 for W from" in figures.describe_regions(curve)


def test_moderated_paths_lists_the_path_itself_and_each_indirect_path():
    pt = build_partable(MODERATED)
    effects = pd.DataFrame({"effect": ["X -> M -> Y"], "kind": ["index_moderated_mediation"],
                            "moderator_value": ["W"]})
    assert figures.moderated_paths(pt, effects) == [
        ("M -> Y", "W", "conditional direct"), ("X -> M -> Y", "W", "conditional indirect")]


def test_conditional_plot_has_one_panel_per_curve():
    pt = build_partable(MODERATED)
    par = _fake_draws(pt, {"M~X": 0.5, "Y~M": 0.3, "Y~M:W": 0.2})
    curves = figures.conditional_curves(pt, par, [("M -> Y", "W", "conditional direct"),
                                                  ("X -> M -> Y", "W", "conditional indirect")])
    fig = figures.conditional_plot(curves)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert "X -> M -> Y" in visible[1].get_title()
    assert figures.conditional_plot([]) is None


def test_runs_of_a_mask():
    z = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert figures._runs(z, np.array([True, True, False, True, False])) == [(0.0, 1.0),
                                                                            (3.0, 3.0)]
    assert figures._runs(z, np.zeros(5, dtype=bool)) == []


def test_rank_plot_shows_the_worst_parameters():
    estimates = pd.DataFrame({"lhs": ["M", "Y", "x1"], "op": ["~", "~", "~~"],
                              "rhs": ["X", "M", "x1"], "free": [1, 2, 0],
                              "r_hat": [1.02, 1.05, np.nan], "ess_bulk": [300, 90, np.nan]})
    worst = figures.worst_parameters(estimates)
    assert worst == ["Y~M", "M~X"]
    rng = np.random.default_rng(1)
    posterior = xr.Dataset({"par": (("chain", "draw", "param"), rng.normal(size=(2, 100, 3)))},
                           coords={"chain": [0, 1], "draw": np.arange(100),
                                   "param": ["M~X", "Y~M", "x1~~x1"]})
    fig = figures.rank_plot(xr.DataTree.from_dict({"posterior": posterior}), worst)
    titles = {ax.get_title() for ax in fig.axes}
    assert {"M~X", "Y~M"} <= titles
    assert figures.rank_plot(xr.DataTree(), []) is None
