"""Report figures on the Agg backend: path diagram layout and styles, forest plot, conditional
effects with the Johnson-Neyman-style region, rank plots; all from fake posteriors (fast)."""

import matplotlib

matplotlib.use("Agg")

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fakes import truth
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, FancyArrowPatch, Rectangle
from sem_models import MODERATED

from bayes_sor.report import figures
from bayes_sor.report.diagram import (
    SHIFTS,
    _Label,
    _Placer,
    layout,
    path_diagram,
    structural_edges,
)
from bayes_sor.spec.partable import build_partable

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


def _label_boxes(fig) -> list:
    """Display-space boxes of the drawn labels (their white boxes) and R^2 notes."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [
        (
            t.get_text(),
            t.get_bbox_patch().get_window_extent(renderer)
            if t.get_bbox_patch() is not None
            else t.get_window_extent(renderer),
        )
        for t in fig.axes[0].texts
        if t.get_bbox_patch() is not None or "R²" in t.get_text()
    ]


@pytest.mark.parametrize("model", ["impulse_buying", "purchase_intention"])
def test_diagram_labels_never_overlap_and_are_readable(root, model):
    # Study A: MI -> IB and SI -> IB cross; Study B: 8 crossing stimulus -> organism arrows
    pt = build_partable((root / "models" / f"{model}.lav").read_text())
    rng = np.random.default_rng(3)
    regs = pt.table[pt.table.op == "~"]
    means = rng.uniform(-0.3, 0.6, len(regs))
    est = _estimates(
        pt,
        {
            f"{r.lhs}~{r.rhs}": (m, m - 0.16, m + 0.14)
            for r, m in zip(regs.itertuples(), means, strict=True)
        },
    )
    r2 = pd.DataFrame({"construct": pt.endogenous, "mean": 0.41, "ci.lower": 0.3, "ci.upper": 0.52})
    fig = path_diagram(pt, est, r2=r2)
    boxes = _label_boxes(fig)
    assert len(boxes) == len(regs) + len(pt.endogenous)  # every path and every R^2
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    sizes = [t.get_fontsize() for t in fig.axes[0].texts if t.get_bbox_patch() is not None]
    # 9 pt on a figure at most 11 inches wide: >= 8 px high where a 900 px page shows it
    assert min(sizes) >= 9 and fig.get_figwidth() <= 11


def test_diagram_shows_each_endogenous_constructs_r2(root):
    pt = build_partable((root / "models" / "impulse_buying.lav").read_text())
    r2 = pd.DataFrame(
        {
            "construct": ["CT", "IB"],
            "mean": [0.33, 0.52],
            "ci.lower": [0.24, 0.41],
            "ci.upper": [0.42, 0.63],
        }
    )
    fig = path_diagram(pt, _estimates(pt, {}), r2=r2)
    texts = {t.get_text(): t.get_position() for t in fig.axes[0].texts}
    pos = layout(pt, *structural_edges(pt, _estimates(pt, {})))
    for name, text in (("CT", "R² = 0.33 [0.24, 0.42]"), ("IB", "R² = 0.52 [0.41, 0.63]")):
        x, y = texts[text]
        assert x == pytest.approx(pos[name][0]) and y < pos[name][1]  # under its construct


def test_a_cfa_gets_a_measurement_diagram(root):
    pt = build_partable((root / "models" / "holzinger_swineford.lav").read_text())
    est = pt.table.assign(mean=0.7, **{"ci.lower": 0.5, "ci.upper": 0.9})
    fig = path_diagram(pt, est)
    ax = fig.axes[0]
    assert sum(isinstance(p, Ellipse) for p in ax.patches) == 3  # the factors
    assert sum(isinstance(p, Rectangle) for p in ax.patches) == 9  # their items
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 9 + 3  # loadings and the factor covariances
    labels = [t.get_text() for t in ax.texts if t.get_bbox_patch() is not None]
    assert labels.count("0.70") == 9 and labels.count("0.70 [0.50, 0.90]") == 3
    for (a, box_a), (b, box_b) in itertools.combinations(_label_boxes(fig), 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    assert path_diagram(pt, est[est.op == "~~"]) is None  # nothing to draw


def _placed_one_box_at_a_time(placer, labels, sizes) -> list[tuple[float, float]]:
    """The placement rule scored box by box, in plain Python: the label with the fewest free
    spots first (one with none last), each at its spot covering the least of what is taken,
    then crossing the fewest other lines, then nearest its preferred spot."""

    def options(i):
        lab, (w, h), out = labels[i], sizes[i], []
        for shift in SHIFTS:
            for k, spot in enumerate(lab.spots):
                x, y = spot[0], spot[1] + shift * h
                box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
                hard = sum(
                    max(0.0, min(box[2], b[2]) - max(box[0], b[0]))
                    * max(0.0, min(box[3], b[3]) - max(box[1], b[1]))
                    for b in taken
                )
                crossed = sum(
                    int(
                        (
                            (c[:, 0] > box[0])
                            & (c[:, 0] < box[2])
                            & (c[:, 1] > box[1])
                            & (c[:, 1] < box[3])
                        ).sum()
                    )
                    for j, c in enumerate(placer.curves)
                    if j != lab.curve
                )
                out.append(
                    (hard, 2.0 * crossed + 6.0 * (k / len(lab.spots) + abs(shift)), (x, y), box)
                )
        return out

    taken, left, placed = list(placer.taken), list(range(len(labels))), {}
    while left:
        scored = {i: options(i) for i in left}
        free = {i: sum(o[0] <= 1e-12 for o in scored[i]) for i in left}
        i = min(left, key=lambda j: (free[j] == 0, free[j]))
        *_, xy, box = min(scored[i], key=lambda o: (o[0] > 1e-12, o[0], o[1]))
        taken.append(box)
        left.remove(i)
        placed[i] = xy
    return [placed[i] for i in range(len(labels))]


@pytest.mark.parametrize("seed", range(4))
def test_labels_go_where_the_placement_rule_scored_box_by_box_puts_them(seed):
    # crowded on purpose: labels compete for spots, cover each other's lines and, where
    # no spot is free, must take the least covered one
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, 6), ylim=(0, 4), aspect="equal")
    ends = rng.uniform([0.5, 0.5], [5.5, 3.5], size=(7, 2, 2))
    curves = [np.linspace(a, b, 41) for a, b in ends]
    nodes = [(x - 0.6, y - 0.3, x + 0.6, y + 0.3) for x, y in rng.uniform(0, [6, 4], (3, 2))]
    labels = [
        _Label(f"{m:.2f} [{m - 0.2:.2f}, {m + 0.2:.2f}]", list(np.linspace(a, b, 9)), m > 0, k)
        for k, ((a, b), m) in enumerate(zip(ends, rng.uniform(-1, 1, 7), strict=True))
    ]
    placer = _Placer(ax, list(nodes), curves)
    expected = _placed_one_box_at_a_time(
        placer, labels, [placer.size(lab.text, 9.5) for lab in labels]
    )
    texts = placer.place(labels)
    drawn = {t.get_text(): t.get_position() for t in texts}
    assert [tuple(drawn[lab.text]) for lab in labels] == expected


def test_forest_plot_has_one_row_per_effect_grouped_by_kind(tmp_path):
    effects = pd.DataFrame(
        {
            "effect": ["X -> M", "M -> Y", "X -> M -> Y", "X -> Y", "X -> Y", "X -> M -> Y"],
            "kind": [
                "direct",
                "direct",
                "indirect",
                "total_indirect",
                "total",
                "conditional_indirect",
            ],
            "moderator_value": ["", "", "", "", "", "W=+1SD"],
            "mean": [0.5, 0.4, 0.2, 0.2, 0.3, 0.3],
            "ci.lower": [0.3, 0.2, 0.1, 0.1, 0.1, 0.1],
            "ci.upper": [0.7, 0.6, 0.3, 0.3, 0.5, 0.5],
        }
    )
    fig = figures.forest_plot(effects)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["X -> M", "M -> Y", "X -> M -> Y", "X -> Y", "X -> Y"]
    path = figures.save_png(fig, tmp_path / "forest.png")
    assert path.read_bytes().startswith(PNG)
    assert path.stat().st_mode & 0o044  # readable by others, like the run's other files


def _fake_draws(pt, values: dict[str, float], n: int = 400, seed: int = 0) -> np.ndarray:
    """(1 chain, n draws, param): structural paths varying around ``values``, rest fixed."""
    rng = np.random.default_rng(seed)
    base = truth(pt, values, variance=0.5, covariance=0.5, path=0.0)
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
    words = figures.describe_regions(curve)
    assert "P(effect > 0) > 0.95 for W from -0.9" in words
    # no region is said so, not "from nowhere"
    assert "P(effect < 0) > 0.95 for W at no value on the grid" in words
    assert "nowhere" not in words


def test_moderated_paths_lists_the_path_itself_and_each_indirect_path():
    pt = build_partable(MODERATED)
    effects = pd.DataFrame(
        {"effect": ["X -> M -> Y"], "kind": ["index_moderated_mediation"], "moderator_value": ["W"]}
    )
    assert figures.moderated_paths(pt, effects) == [
        ("M -> Y", "W", "conditional direct"),
        ("X -> M -> Y", "W", "conditional indirect"),
    ]


def test_conditional_plot_has_one_panel_per_curve():
    pt = build_partable(MODERATED)
    par = _fake_draws(pt, {"M~X": 0.5, "Y~M": 0.3, "Y~M:W": 0.2})
    curves = figures.conditional_curves(
        pt,
        par,
        [("M -> Y", "W", "conditional direct"), ("X -> M -> Y", "W", "conditional indirect")],
    )
    fig = figures.conditional_plot(curves)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert "X -> M -> Y" in visible[1].get_title()
    assert figures.conditional_plot([]) is None


def test_runs_of_a_mask():
    z = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert figures._runs(z, np.array([True, True, False, True, False])) == [(0.0, 1.0), (3.0, 3.0)]
    assert figures._runs(z, np.zeros(5, dtype=bool)) == []


def test_rank_plot_shows_the_worst_parameters():
    estimates = pd.DataFrame(
        {
            "lhs": ["M", "Y", "x1"],
            "op": ["~", "~", "~~"],
            "rhs": ["X", "M", "x1"],
            "free": [1, 2, 0],
            "r_hat": [1.02, 1.05, np.nan],
            "ess_bulk": [300, 90, np.nan],
        }
    )
    worst = figures.worst_parameters(estimates)
    assert worst == ["Y~M", "M~X"]
    rng = np.random.default_rng(1)
    posterior = xr.Dataset(
        {"par": (("chain", "draw", "param"), rng.normal(size=(2, 100, 3)))},
        coords={"chain": [0, 1], "draw": np.arange(100), "param": ["M~X", "Y~M", "x1~~x1"]},
    )
    fig = figures.rank_plot(xr.DataTree.from_dict({"posterior": posterior}), worst)
    titles = {ax.get_title() for ax in fig.axes}
    assert {"M~X", "Y~M"} <= titles
    # readable once the figure is scaled into a page's text column
    assert min(ax.title.get_fontsize() for ax in fig.axes if ax.get_title()) >= 11
    assert fig._suptitle.get_fontsize() >= 10
    assert figures.rank_plot(xr.DataTree(), []) is None


def test_worst_parameters_of_a_multiple_group_fit_are_the_posterior_names():
    """Rows of a later group are named as in the posterior (``.g2``): the same ``lhs op rhs``
    in two groups would select two parameters and break the rank plot."""
    estimates = pd.DataFrame(
        {
            "lhs": ["x1", "F", "x1", "F"],
            "op": ["~1", "=~", "~1", "=~"],
            "rhs": ["", "x2", "", "x2"],
            "group": ["B", "B", "A", "A"],  # B appears first: it is the first group
            "free": [1, 2, 1, 3],
            "r_hat": [1.03, 1.0, 1.03, 1.02],
            "ess_bulk": [200.0, 900.0, 210.0, 500.0],
        }
    )
    assert figures.worst_parameters(estimates, 3) == ["x1~1", "x1~1.g2", "F=~x2.g2"]


def test_group_differences_plot_shows_only_the_differences_labelled_with_their_groups():
    effects = pd.DataFrame(
        {
            "effect": ["X -> M", "X -> M", "X -> M", "X -> M -> Y"],
            "kind": ["direct", "direct", "direct", "indirect"],
            "moderator_value": ["", "", "", ""],
            "group": ["A", "B", "B - A", "B - A"],
            "mean": [0.5, 0.2, -0.3, -0.1],
            "ci.lower": [0.3, 0.0, -0.5, -0.2],
            "ci.upper": [0.7, 0.4, -0.1, 0.0],
        }
    )
    fig = figures.group_differences_plot(effects)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["X -> M  [B - A]", "X -> M -> Y  [B - A]"]
    assert fig.axes[0].get_xlabel().startswith("difference between groups")
    assert figures.group_differences_plot(effects.drop(columns="group")) is None
