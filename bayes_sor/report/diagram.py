"""The structural model as a path diagram, drawn with matplotlib (no graphviz needed).

S-O-R layout: each construct's column is its causal depth (exogenous stimuli left, mediators
in the middle, final outcomes right); moderators sit above the path they moderate, with an
arrow onto that path. Arrows carry the posterior mean and interval; a path whose interval
excludes zero is solid, one whose interval includes zero dashed and grey. Each endogenous
construct shows its R^2. Labels are placed from their drawn sizes so that no two overlap.
A model without structural paths (a CFA) is drawn as its measurement model instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, FancyArrowPatch, Patch, Rectangle
from matplotlib.text import Text

from bayes_sor.spec.partable import ParTable

COLUMN_GAP = 3.4  # least horizontal distance between S-O-R columns (data units)
#: the gap widens by this much per arrow crossing it, so that their labels find room
GAP_PER_ARROW = 0.3
ROW_GAP = 1.5
NODE_W, NODE_H = 1.25, 0.62
CREDIBLE, UNCERTAIN = "#1f3b73", "#8a8a8a"
#: an arrow bends when a node centre lies closer than this to its straight line
CLEARANCE = 0.55
#: where along the moderated path a moderation arrow lands
MODERATION_T = 0.62
INCH = 1.0  # inches per data unit
NODE_FONT, LABEL_FONT, R2_FONT = 12, 9.5, 9  # points: readable with the figure at 900 px
LABEL_PAD, NOTE_PAD = 0.2, 0.1  # padding of a label's and an R^2 note's box, in font sizes
#: where along an arrow its label may go, in order of preference
LABEL_T = tuple(sorted(np.round(np.arange(0.1, 0.91, 0.025), 3), key=lambda t: abs(t - 0.42)))
#: measurement diagram: item spacing and box, factor height above the items; loadings are
#: labelled near their item, where the arrows fanning out of a factor are apart
ITEM_GAP, ITEM_SIZE, ITEM_FONT, FACTOR_Y = 0.95, (0.8, 0.45), 10, 2.4
LOADING_T = tuple(np.round(np.arange(0.72, 0.39, -0.04), 2))
#: a label's vertical shifts off its arrow, in label heights, in order of preference
SHIFTS = (0.0, 1.1, -1.1, 2.2, -2.2, 3.3, -3.3)


@dataclass(frozen=True)
class Edge:
    """A path cause -> outcome, with its posterior summary."""

    cause: str
    outcome: str
    mean: float
    lower: float
    upper: float

    @property
    def credible(self) -> bool:
        """True when the interval excludes zero."""
        return self.lower > 0 or self.upper < 0

    @property
    def label(self) -> str:
        return f"{self.mean:.2f} [{self.lower:.2f}, {self.upper:.2f}]"


@dataclass(frozen=True)
class Moderation:
    """``outcome ~ first:moderator``: the moderator bends the path first -> outcome."""

    edge: Edge
    moderator: str


def structural_edges(
    partable: ParTable, estimates: pd.DataFrame
) -> tuple[list[Edge], list[Moderation]]:
    """The regressions (plain paths and moderations) with their estimates."""
    regs = estimates[estimates.op == "~"]
    edges, moderations = [], []
    rows = regs[["lhs", "rhs", "mean", "ci.lower", "ci.upper"]].itertuples(index=False, name=None)
    for lhs, rhs, mean, lower, upper in rows:
        cause = rhs.split(":")
        edge = Edge(cause[0], lhs, float(mean), float(lower), float(upper))
        if len(cause) == 2:
            moderations.append(Moderation(edge, cause[1]))
        else:
            edges.append(edge)
    return edges, moderations


def _depths(nodes: list[str], edges: list[Edge]) -> dict[str, int]:
    """Longest-path depth from the sources (the model is acyclic)."""
    parents = {n: [e.cause for e in edges if e.outcome == n and e.cause in nodes] for n in nodes}
    depth: dict[str, int] = {}

    def visit(n: str) -> int:
        if n not in depth:
            depth[n] = 1 + max((visit(p) for p in parents[n]), default=-1)
        return depth[n]

    for n in nodes:
        visit(n)
    return depth


def layout(
    partable: ParTable, edges: list[Edge], moderations: list[Moderation]
) -> dict[str, tuple[float, float]]:
    """Node centres: columns by causal depth, final outcomes in the last column, exogenous
    moderators in a row above the path they moderate."""
    involved = (
        {e.cause for e in edges}
        | {e.outcome for e in edges}
        | {v for m in moderations for v in (m.edge.cause, m.edge.outcome, m.moderator)}
    )
    incoming = {e.outcome for e in edges} | {m.edge.outcome for m in moderations}
    top = [w for w in partable.moderators if w in involved and w not in incoming]
    nodes = [n for n in partable.order if n in involved and n not in top]
    depth = _depths(nodes, edges)
    last = max(depth.values(), default=0)
    sinks = {n for n in nodes if n in incoming and not any(e.cause == n for e in edges)}
    column = {n: last if n in sinks else depth[n] for n in nodes}
    crossing = [
        sum(column[e.cause] <= c < column[e.outcome] for e in edges if e.cause in column)
        for c in range(last)
    ]
    x = np.concatenate(
        [[0.0], np.cumsum([max(COLUMN_GAP, 1.6 + GAP_PER_ARROW * n) for n in crossing])]
    )
    pos: dict[str, tuple[float, float]] = {}
    for c in range(last + 1):
        members = [n for n in nodes if column[n] == c]
        if c:  # order by the mean height of the causes already placed: fewer crossings
            members.sort(
                key=lambda n: (
                    -np.mean(
                        [pos[e.cause][1] for e in edges if e.outcome == n and e.cause in pos] or [0]
                    )
                )
            )
        for k, n in enumerate(members):
            pos[n] = (float(x[c]), ((len(members) - 1) / 2 - k) * ROW_GAP)
    height = max((y for _, y in pos.values()), default=0)
    for k, w in enumerate(top):
        targets = [m.edge for m in moderations if m.moderator == w]
        xs = [
            pos[e.cause][0] + MODERATION_T * (pos[e.outcome][0] - pos[e.cause][0]) for e in targets
        ]
        pos[w] = (float(np.mean(xs)) + 0.9 * k * (len(top) > 1), height + 1.6)
    return pos


def _bend(a: np.ndarray, b: np.ndarray, others: list[np.ndarray]) -> float:
    """arc3 curvature that takes the arrow a -> b around nodes lying on its straight line."""
    d = b - a
    length = float(np.hypot(*d))
    blockers = []
    for p in others:
        t = float(np.dot(p - a, d) / length**2)
        if 0.05 < t < 0.95 and abs(d[0] * (p - a)[1] - d[1] * (p - a)[0]) / length < CLEARANCE:
            blockers.append(p)
    if not blockers:
        return 0.0
    normal = np.array([d[1], -d[0]])  # where matplotlib's arc3 moves the control point
    away = np.dot(normal, (a + b) / 2 - np.mean(blockers, axis=0))
    return 0.3 if away >= 0 else -0.3


def _curve_point(a: np.ndarray, b: np.ndarray, rad: float, t: float) -> np.ndarray:
    """Point at parameter t of matplotlib's arc3 quadratic Bezier from a to b."""
    d = b - a
    control = (a + b) / 2 + rad * np.array([d[1], -d[0]])
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t**2 * b


def _style(credible: bool) -> dict:
    return {
        "color": CREDIBLE if credible else UNCERTAIN,
        "linestyle": "-" if credible else (0, (4, 3)),
        "linewidth": 1.6 if credible else 1.2,
    }


def _node(
    ax: Axes,
    name: str,
    xy: tuple[float, float],
    observed: bool,
    size: tuple[float, float] = (NODE_W, NODE_H),
    fontsize: float = NODE_FONT,
) -> Patch:
    width, height = size
    shape = (
        Rectangle((xy[0] - width / 2, xy[1] - height / 2), width, height)
        if observed
        else Ellipse(xy, width, height)
    )
    shape.set(facecolor="#eef3fb", edgecolor="#1f3b73", linewidth=1.4, zorder=3)
    ax.add_patch(shape)
    ax.text(*xy, name, ha="center", va="center", fontsize=fontsize, fontweight="bold", zorder=4)
    return shape


def _arrow(
    ax: Axes,
    start: np.ndarray,
    end: np.ndarray,
    credible: bool,
    rad: float = 0.0,
    patch_a: Patch | None = None,
    patch_b: Patch | None = None,
    arrowstyle: str = "-|>",
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            patchA=patch_a,
            patchB=patch_b,
            connectionstyle=f"arc3,rad={rad}",
            arrowstyle=arrowstyle,
            mutation_scale=14,
            shrinkA=1,
            shrinkB=1,
            zorder=2,
            **_style(credible),
        )
    )


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in data units


def _around(xy: np.ndarray, width: float, height: float) -> Box:
    return (xy[0] - width / 2, xy[1] - height / 2, xy[0] + width / 2, xy[1] + height / 2)


def _covered(boxes: np.ndarray, box: Box) -> np.ndarray:
    """The area of ``box`` that each of ``boxes`` (rows x0, y0, x1, y1) covers."""
    width = np.maximum(0.0, np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]))
    height = np.maximum(0.0, np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]))
    return width * height


@dataclass
class _Label:
    """A label to place: its text and the spots it may go, best first (along its arrow)."""

    text: str
    spots: list[np.ndarray]
    credible: bool
    curve: int = -1  # index of its own arrow's curve (-1: none)


@dataclass
class _Candidates:
    """A label's candidate boxes (rows x0, y0, x1, y1), their centres, the area of what is
    taken that each covers, and each one's soft penalty (other arrows' lines it covers, its
    distance from the preferred spot)."""

    xy: np.ndarray
    boxes: np.ndarray
    covered: np.ndarray
    soft: np.ndarray


class _Placer:
    """Places labels from their drawn sizes: never over a node, an R^2 note or another label;
    preferably not over another arrow's line, and near the middle of its own arrow."""

    def __init__(self, ax: Axes, taken: list[Box], curves: list[np.ndarray]) -> None:
        self.ax, self.taken, self.curves = ax, taken, curves
        canvas = FigureCanvasAgg(ax.figure)
        self.renderer = canvas.get_renderer()
        ax.apply_aspect()

    def size(self, text: str, fontsize: float, pad: float = LABEL_PAD) -> tuple[float, float]:
        """Width and height in data units of ``text`` in its box (padding included)."""
        probe = self.ax.text(0, 0, text, fontsize=fontsize)
        extent = probe.get_window_extent(self.renderer)
        probe.remove()
        pad_px = 2 * pad * fontsize * self.ax.figure.dpi / 72 + 8  # and a gap between boxes
        inverse = self.ax.transData.inverted()
        (x0, y0), (x1, y1) = inverse.transform(
            [(0, 0), (extent.width + pad_px, extent.height + pad_px)]
        )
        return abs(x1 - x0), abs(y1 - y0)

    def note(self, xy: np.ndarray, text: str, fontsize: float, **kw) -> Text:
        """A fixed text (such as an R^2 under a node) that labels must keep clear of."""
        self.taken.append(_around(xy, *self.size(text, fontsize, pad=NOTE_PAD)))
        return self.ax.text(
            *xy,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            zorder=5,
            bbox={
                "boxstyle": f"square,pad={NOTE_PAD}",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.85,
            },
            **kw,
        )

    def _candidates(self, label: _Label, size: tuple[float, float]) -> _Candidates:
        """The label's candidate boxes, best first: on the arrow, then shifted off it; with
        the lines of other arrows each box covers."""
        spots = np.array(label.spots)
        n = len(spots)
        xy = np.concatenate([spots + np.array([0.0, shift * size[1]]) for shift in SHIFTS])
        boxes = np.column_stack(
            [
                xy[:, 0] - size[0] / 2,
                xy[:, 1] - size[1] / 2,
                xy[:, 0] + size[0] / 2,
                xy[:, 1] + size[1] / 2,
            ]
        )
        rank = np.concatenate([np.arange(n) / n + abs(shift) for shift in SHIFTS])
        points = [c for k, c in enumerate(self.curves) if k != label.curve]
        crossed = np.zeros(len(boxes), dtype=int)
        if points:
            p = np.concatenate(points)
            crossed = np.count_nonzero(
                (p[None, :, 0] > boxes[:, None, 0])
                & (p[None, :, 0] < boxes[:, None, 2])
                & (p[None, :, 1] > boxes[:, None, 1])
                & (p[None, :, 1] < boxes[:, None, 3]),
                axis=1,
            )
        covered = np.zeros(len(boxes))
        for taken in self.taken:
            covered = covered + _covered(boxes, taken)
        return _Candidates(xy, boxes, covered, 2.0 * crossed + 6.0 * rank)

    def place(self, labels: list[_Label], fontsize: float = LABEL_FONT) -> list[Text]:
        """Place every label; the most constrained (fewest free spots) first."""
        sizes = [self.size(lab.text, fontsize) for lab in labels]
        candidates = {i: self._candidates(lab, sizes[i]) for i, lab in enumerate(labels)}
        texts = []
        while candidates:
            free = {i: int(np.sum(c.covered <= 1e-12)) for i, c in candidates.items()}
            i = min(candidates, key=lambda j: (free[j] == 0, free[j]))
            c = candidates.pop(i)
            best = min(
                range(len(c.boxes)),
                key=lambda k: (c.covered[k] > 1e-12, c.covered[k], c.soft[k]),
            )
            box = tuple(c.boxes[best])
            xy = c.xy[best]
            self.taken.append(box)
            for other in candidates.values():  # what is taken only grows: add the new box
                other.covered = other.covered + _covered(other.boxes, box)
            lab = labels[i]
            texts.append(
                self.ax.text(
                    *xy,
                    lab.text,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    zorder=5,
                    gid="label",
                    color=CREDIBLE if lab.credible else "#555555",
                    bbox={
                        "boxstyle": f"round,pad={LABEL_PAD}",
                        "facecolor": "white",
                        "edgecolor": "#cccccc",
                        "alpha": 0.95,
                    },
                )
            )
        return texts


def _canvas(extent: np.ndarray, margin: tuple[float, float, float, float]) -> tuple[Figure, Axes]:
    """A figure whose axes show ``extent`` (points, data units) at INCH inches per unit, with
    room for the legend below."""
    (x0, y0), (x1, y1) = extent.min(axis=0), extent.max(axis=0)
    x0, x1, y0, y1 = x0 - margin[0], x1 + margin[1], y0 - margin[2], y1 + margin[3]
    legend = 0.7
    fig = Figure(figsize=(max(6.0, INCH * (x1 - x0)), max(3.0, INCH * (y1 - y0) + legend)))
    ax = fig.add_axes((0, legend / fig.get_figheight(), 1, 1 - legend / fig.get_figheight()))
    ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal")
    ax.axis("off")
    return fig, ax


def _r2_text(row: pd.Series) -> str:
    return f"R\u00b2 = {row['mean']:.2f} [{row['ci.lower']:.2f}, {row['ci.upper']:.2f}]"


def _curve(a: np.ndarray, b: np.ndarray, rad: float = 0.0) -> np.ndarray:
    """41 points along the arc from ``a`` to ``b``, for label placement to avoid."""
    return np.array([_curve_point(a, b, rad, t) for t in np.linspace(0, 1, 41)])


def path_diagram(
    partable: ParTable,
    estimates: pd.DataFrame,
    interval: str = "95% interval",
    r2: pd.DataFrame | None = None,
) -> Figure | None:
    """The structural model with posterior path estimates and, from ``r2`` (columns
    construct, mean, ci.lower, ci.upper), each endogenous construct's R^2; a CFA's
    measurement model (:func:`measurement_diagram`) when there are no paths; None when there
    is neither."""
    edges, moderations = structural_edges(partable, estimates)
    if not edges and not moderations:
        return measurement_diagram(partable, estimates, interval)
    pos = layout(partable, edges, moderations)
    centre = {n: np.array(xy, dtype=float) for n, xy in pos.items()}
    bends, targets = _bends_and_targets(edges, moderations, centre)
    curves = [
        _curve(centre[e.cause], centre[e.outcome], bends[(e.cause, e.outcome)]) for e in edges
    ]
    curves += [np.linspace(centre[m.moderator], t, 41) for m, t in targets.items()]
    fig, ax = _canvas(np.vstack([*curves, *centre.values()]), (1.0, 1.0, 0.85, 0.6))
    observed = set(partable.observed_structural)
    patches = {n: _node(ax, n, xy, n in observed) for n, xy in pos.items()}
    # Nodes and the points where moderation arrows land are no place for a label.
    placer = _Placer(
        ax,
        [_around(c, NODE_W, NODE_H) for c in centre.values()]
        + [_around(t, 0.25, 0.25) for t in targets.values()],
        curves,
    )
    _r2_notes(placer, r2, centre)
    labels = []
    for k, e in enumerate(edges):
        a, b, rad = centre[e.cause], centre[e.outcome], bends[(e.cause, e.outcome)]
        _arrow(ax, a, b, e.credible, rad, patches[e.cause], patches[e.outcome])
        labels.append(_Label(e.label, [_curve_point(a, b, rad, t) for t in LABEL_T], e.credible, k))
    for k, (m, target) in enumerate(targets.items(), start=len(edges)):
        start = centre[m.moderator]
        _arrow(ax, start, target, m.edge.credible, patch_a=patches[m.moderator])
        text = f"{m.edge.cause}\u00d7{m.moderator}: {m.edge.label}"
        spots = [start + t * (target - start) for t in LABEL_T]
        labels.append(_Label(text, spots, m.edge.credible, k))
    placer.place(labels)
    _legend(fig, interval, r2 is not None and len(r2) > 0)
    return fig


def _bends_and_targets(
    edges: list[Edge], moderations: list[Moderation], centre: dict[str, np.ndarray]
) -> tuple[dict[tuple[str, str], float], dict[Moderation, np.ndarray]]:
    """Each path's curvature (bent around the nodes in its way) and the point where each
    moderation arrow lands on its path."""
    bends = {
        (e.cause, e.outcome): _bend(
            centre[e.cause],
            centre[e.outcome],
            [p for n, p in centre.items() if n not in (e.cause, e.outcome)],
        )
        for e in edges
    }
    # A moderation arrow lands past the middle of its path, leaving room for the path's label.
    targets = {
        m: _curve_point(
            centre[m.edge.cause],
            centre[m.edge.outcome],
            bends.get((m.edge.cause, m.edge.outcome), 0.0),
            MODERATION_T,
        )
        for m in moderations
    }
    return bends, targets


def _r2_notes(placer: _Placer, r2: pd.DataFrame | None, centre: dict[str, np.ndarray]) -> None:
    """Each endogenous construct's R^2 under its node."""
    for row in (r2 if r2 is not None else pd.DataFrame()).to_dict("records"):
        if row["construct"] in centre:
            xy = centre[row["construct"]] - np.array([0.0, NODE_H / 2 + 0.2])
            placer.note(xy, _r2_text(row), R2_FONT, gid="r2", style="italic", color="#333333")


def measurement_diagram(
    partable: ParTable, estimates: pd.DataFrame, interval: str = "95% interval"
) -> Figure | None:
    """A measurement model: factors above their items, arrows labelled with the loadings'
    posterior means, factor covariances as arcs above; None without factors."""
    loads = estimates[estimates.op == "=~"]
    factors = [f for f in partable.latents if f in set(loads.lhs)]
    if not factors:
        return None
    item_xy, factor_xy = _measurement_positions(loads, factors)
    covs = estimates[
        (estimates.op == "~~")
        & (estimates.lhs != estimates.rhs)
        & estimates.lhs.isin(factors)
        & estimates.rhs.isin(factors)
    ]
    arcs = [_curve(factor_xy[r.lhs], factor_xy[r.rhs], -0.35) for r in covs.itertuples()]
    lines = [
        np.linspace(factor_xy[r.lhs], item_xy[r.rhs], 41)
        for r in loads.itertuples()
        if r.rhs in item_xy
    ]
    fig, ax = _canvas(np.vstack([*lines, *arcs, *factor_xy.values()]), (0.7, 0.7, 0.7, 0.7))
    patches = {f: _node(ax, f, tuple(xy), False) for f, xy in factor_xy.items()}
    patches |= {i: _node(ax, i, tuple(xy), True, ITEM_SIZE, ITEM_FONT) for i, xy in item_xy.items()}
    placer = _Placer(
        ax,
        [_around(factor_xy[f], NODE_W, NODE_H) for f in factors]
        + [_around(xy, *ITEM_SIZE) for xy in item_xy.values()],
        [*lines, *arcs],
    )
    labels = []
    for k, r in enumerate(loads.itertuples()):
        edge = Edge(r.lhs, r.rhs, *_summary(loads.loc[r.Index]))
        a, b = factor_xy[r.lhs], item_xy[r.rhs]
        _arrow(ax, a, b, edge.credible, patch_a=patches[r.lhs], patch_b=patches[r.rhs])
        spots = [_curve_point(a, b, 0.0, t) for t in LOADING_T]
        labels.append(_Label(f"{edge.mean:.2f}", spots, edge.credible, k))
    for k, r in enumerate(covs.itertuples(), start=len(lines)):
        edge = Edge(r.lhs, r.rhs, *_summary(covs.loc[r.Index]))
        a, b = factor_xy[r.lhs], factor_xy[r.rhs]
        _arrow(ax, a, b, edge.credible, -0.35, patches[r.lhs], patches[r.rhs], "<|-|>")
        spots = [_curve_point(a, b, -0.35, t) for t in LABEL_T]
        labels.append(_Label(edge.label, spots, edge.credible, k))
    placer.place(labels)
    _legend(fig, interval, False, loadings=True)
    return fig


def _measurement_positions(
    loads: pd.DataFrame, factors: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Items in a row, each under the first factor it loads on; each factor centred over
    its own items (over all it loads on when every one of them sits under another)."""
    items: list[str] = []
    for f in factors:
        items += [i for i in loads.rhs[loads.lhs == f] if i not in items]
    item_xy = {i: np.array([k * ITEM_GAP, 0.0]) for k, i in enumerate(items)}
    factor_xy = {}
    for f in factors:
        own = [item_xy[i][0] for i in items if _first(loads, i) == f]
        x = np.mean(own or [item_xy[i][0] for i in loads.rhs[loads.lhs == f]])
        factor_xy[f] = np.array([x, FACTOR_Y])
    return item_xy, factor_xy


def _first(loads: pd.DataFrame, item: str) -> str:
    return str(loads.lhs[loads.rhs == item].iloc[0])


def _summary(row: pd.Series) -> tuple[float, float, float]:
    return float(row["mean"]), float(row["ci.lower"]), float(row["ci.upper"])


def _legend(fig: Figure, interval: str, r2: bool, loadings: bool = False) -> None:
    handles = [
        Line2D([], [], color=CREDIBLE, linewidth=1.6, label=f"{interval} excludes 0"),
        Line2D(
            [],
            [],
            color=UNCERTAIN,
            linewidth=1.2,
            linestyle=(0, (4, 3)),
            label=f"{interval} includes 0",
        ),
        Patch(
            facecolor="white",
            edgecolor="#cccccc",
            label="loading: posterior mean; covariance: mean [interval]"
            if loadings
            else "posterior mean [interval]",
        ),
    ]
    if r2:
        handles.append(
            Line2D([], [], linestyle="none", label="R\u00b2: explained variance, mean [interval]")
        )
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=9)
