"""The structural model as a path diagram, drawn with matplotlib (no graphviz needed).

S-O-R layout: each construct's column is its causal depth (exogenous stimuli left, mediators
in the middle, final outcomes right); moderators sit above the path they moderate, with an
arrow onto that path. Arrows carry the posterior mean and interval; a path whose interval
excludes zero is solid, one whose interval includes zero dashed and grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, FancyArrowPatch, Patch, Rectangle

from bayes_sor.partable import ParTable

COLUMN_GAP = 3.4  # horizontal distance between S-O-R columns (data units)
ROW_GAP = 1.5
NODE_W, NODE_H = 1.25, 0.62
CREDIBLE, UNCERTAIN = "#1f3b73", "#8a8a8a"
#: an arrow bends when a node centre lies closer than this to its straight line
CLEARANCE = 0.55
#: where along the moderated path a moderation arrow lands
MODERATION_T = 0.62


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


def structural_edges(partable: ParTable, estimates: pd.DataFrame) -> tuple[list[Edge],
                                                                           list[Moderation]]:
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


def layout(partable: ParTable, edges: list[Edge],
           moderations: list[Moderation]) -> dict[str, tuple[float, float]]:
    """Node centres: columns by causal depth, final outcomes in the last column, exogenous
    moderators in a row above the path they moderate."""
    involved = {e.cause for e in edges} | {e.outcome for e in edges} | {
        v for m in moderations for v in (m.edge.cause, m.edge.outcome, m.moderator)}
    incoming = {e.outcome for e in edges} | {m.edge.outcome for m in moderations}
    top = [w for w in partable.moderators if w in involved and w not in incoming]
    nodes = [n for n in partable.order if n in involved and n not in top]
    depth = _depths(nodes, edges)
    last = max(depth.values(), default=0)
    sinks = {n for n in nodes if n in incoming and not any(e.cause == n for e in edges)}
    column = {n: last if n in sinks else depth[n] for n in nodes}
    pos: dict[str, tuple[float, float]] = {}
    for c in range(last + 1):
        members = [n for n in nodes if column[n] == c]
        if c:  # order by the mean height of the causes already placed: fewer crossings
            members.sort(key=lambda n: -np.mean([pos[e.cause][1] for e in edges
                                                 if e.outcome == n and e.cause in pos] or [0]))
        for k, n in enumerate(members):
            pos[n] = (c * COLUMN_GAP, ((len(members) - 1) / 2 - k) * ROW_GAP)
    height = max((y for _, y in pos.values()), default=0)
    for k, w in enumerate(top):
        targets = [m.edge for m in moderations if m.moderator == w]
        xs = [pos[e.cause][0] + MODERATION_T * (pos[e.outcome][0] - pos[e.cause][0])
              for e in targets]
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


def _node(ax: Axes, name: str, xy: tuple[float, float], observed: bool) -> Patch:
    shape = (Rectangle((xy[0] - NODE_W / 2, xy[1] - NODE_H / 2), NODE_W, NODE_H)
             if observed else Ellipse(xy, NODE_W, NODE_H))
    shape.set(facecolor="#eef3fb", edgecolor="#1f3b73", linewidth=1.4, zorder=3)
    ax.add_patch(shape)
    ax.text(*xy, name, ha="center", va="center", fontsize=11, fontweight="bold", zorder=4)
    return shape


def _arrow(ax: Axes, start: np.ndarray, end: np.ndarray, edge: Edge, rad: float = 0.0,
           patch_a: Patch | None = None, patch_b: Patch | None = None) -> None:
    style = {"color": CREDIBLE if edge.credible else UNCERTAIN,
             "linestyle": "-" if edge.credible else (0, (4, 3)),
             "linewidth": 1.6 if edge.credible else 1.2}
    ax.add_patch(FancyArrowPatch(start, end, patchA=patch_a, patchB=patch_b,
                                 connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                 mutation_scale=14, shrinkA=1, shrinkB=1, zorder=2, **style))


def _label(ax: Axes, xy: np.ndarray, edge: Edge, text: str | None = None) -> None:
    ax.text(*xy, text or edge.label, ha="center", va="center", fontsize=8, zorder=5,
            color=CREDIBLE if edge.credible else "#555555",
            bbox={"boxstyle": "round,pad=0.18", "facecolor": "white", "edgecolor": "#cccccc",
                  "alpha": 0.92})


@dataclass
class _Boxes:
    """Axis-aligned boxes already taken, with how bad covering each is (a node is worse than
    another label): where a new label should not go."""

    taken: list[tuple[tuple[float, float, float, float], float]]

    @staticmethod
    def around(xy: np.ndarray, width: float, height: float) -> tuple[float, float, float, float]:
        return (xy[0] - width / 2, xy[1] - height / 2, xy[0] + width / 2, xy[1] + height / 2)

    def cost(self, box: tuple[float, float, float, float]) -> float:
        """Weighted area of ``box`` covered by the boxes already taken."""
        return sum(weight * max(0.0, min(box[2], b[2]) - max(box[0], b[0]))
                   * max(0.0, min(box[3], b[3]) - max(box[1], b[1])) for b, weight in self.taken)

    def place(self, candidates: list[np.ndarray], text: str) -> np.ndarray:
        """The first candidate whose label box is free (else the least covered one)."""
        size = (LABEL_CHAR * len(text) + 0.12, LABEL_H)
        boxes = [self.around(c, *size) for c in candidates]
        k = int(np.argmin([self.cost(b) for b in boxes]))  # the first of equal minima
        self.taken.append((boxes[k], 1.0))
        return candidates[k]


INCH = 1.3  # inches per data unit
LABEL_CHAR, LABEL_H = 0.068 / INCH, 0.2 / INCH * 1.3  # 8 pt label size in data units
#: where along an arrow its label may go, in order of preference
LABEL_T = tuple(sorted(np.round(np.arange(0.15, 0.86, 0.05), 2), key=lambda t: abs(t - 0.5)))


def path_diagram(partable: ParTable, estimates: pd.DataFrame,
                 interval: str = "95% interval") -> Figure | None:
    """The structural model with posterior path estimates; None if the model has no paths."""
    edges, moderations = structural_edges(partable, estimates)
    if not edges and not moderations:
        return None
    pos = layout(partable, edges, moderations)
    centre = {n: np.array(xy, dtype=float) for n, xy in pos.items()}
    bends = {(e.cause, e.outcome): _bend(centre[e.cause], centre[e.outcome],
                                         [p for n, p in centre.items()
                                          if n not in (e.cause, e.outcome)]) for e in edges}
    curves = [np.array([_curve_point(centre[e.cause], centre[e.outcome], bends[(e.cause,
                        e.outcome)], t) for t in np.linspace(0, 1, 21)]) for e in edges]
    extent = np.vstack([*curves, *centre.values()])
    (x0, y0), (x1, y1) = extent.min(axis=0), extent.max(axis=0)
    x0, x1, y0, y1 = x0 - 1.0, x1 + 1.0, y0 - 0.75, y1 + 0.6
    fig = Figure(figsize=(max(6.0, INCH * (x1 - x0)), max(3.0, INCH * (y1 - y0) + 0.4)))
    ax = fig.add_axes((0, 0.4 / fig.get_figheight(), 1, 1 - 0.4 / fig.get_figheight()))
    ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal")
    ax.axis("off")
    observed = set(partable.observed_structural)
    patches = {n: _node(ax, n, xy, n in observed) for n, xy in pos.items()}
    # A moderation arrow lands past the middle of its path, leaving room for the path's label.
    targets = {m: _curve_point(centre[m.edge.cause], centre[m.edge.outcome],
                               bends.get((m.edge.cause, m.edge.outcome), 0.0), MODERATION_T)
               for m in moderations}
    # Nodes and the points where moderation arrows land are no place for a label.
    boxes = _Boxes([(_Boxes.around(c, NODE_W, NODE_H), 4.0) for c in centre.values()]
                   + [(_Boxes.around(t, 0.25, 0.25), 4.0) for t in targets.values()])
    for e in edges:
        a, b, rad = centre[e.cause], centre[e.outcome], bends[(e.cause, e.outcome)]
        _arrow(ax, a, b, e, rad, patches[e.cause], patches[e.outcome])
        spots = [_curve_point(a, b, rad, t) for t in LABEL_T]
        _label(ax, boxes.place(spots, e.label), e)
    for m, target in targets.items():
        start = centre[m.moderator]
        _arrow(ax, start, target, m.edge, patch_a=patches[m.moderator])
        text = f"{m.edge.cause}\u00d7{m.moderator}: {m.edge.label}"
        spots = [start + t * (target - start) for t in LABEL_T]
        _label(ax, boxes.place(spots, text), m.edge, text)
    _legend(fig, interval)
    return fig


def _legend(fig: Figure, interval: str) -> None:
    handles = [Line2D([], [], color=CREDIBLE, linewidth=1.6, label=f"{interval} excludes 0"),
               Line2D([], [], color=UNCERTAIN, linewidth=1.2, linestyle=(0, (4, 3)),
                      label=f"{interval} includes 0"),
               Patch(facecolor="white", edgecolor="#cccccc",
                     label=f"posterior mean [{interval}]")]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
