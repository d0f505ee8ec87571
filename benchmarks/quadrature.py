"""Benchmark the quadrature likelihood of latent interactions against the conditional one
(issue 23): CLI fits side by side, and the time per gradient against N and the node count.

    python benchmarks/quadrature.py               # everything (~30-60 min on 2 cores)
    python benchmarks/quadrature.py --only grad   # the time-per-gradient tables only
    python benchmarks/quadrature.py --only fit    # the CLI rows only
    python benchmarks/quadrature.py --only scores # the moderator's scores after a fit

CLI rows: ``python -m bayes_sor fit`` at the CLI's defaults (each likelihood's own), in a fresh
process (wall time includes import, compilation, sampling, the moderator scores and the
report), on Study A and on the three-factor interaction model of issue 23 (``Y ~ X + Z + X:Z``,
three items each, item means about 1, marker identification, N = 2000, simulated here).
Gradient rows: logp + gradient of the quadrature log-likelihood alone (the fused op against
PyTensor's graph of the same rule), compiled with PyTensor's numba backend, at the model's
generating values, and the whole model's gradient at its starting point; medians of
interleaved rounds (compilation excluded). Scores rows: the moderator's scores of a quadrature
fit (``affine_moderator_draws``, 4 chains x 1000 draws near the generating values) on Study A
and the three-factor model, the whole call and its parts per draw (CPU time).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
from run import ROOT, run_one

from bayes_sor.data.missing import Patterns
from bayes_sor.model.build import pymc_model
from bayes_sor.model.quadrature import (
    Layout,
    adapted_nodes,
    affine_basis,
    respondent_loglik,
    table_function,
)
from bayes_sor.model.quadrature_kernel import draw_on_cells
from bayes_sor.model.simulate import simulate, truth_vector
from bayes_sor.posterior.scores import ADAPTED_CELLS, ADAPTED_SPAN, affine_moderator_draws
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

THREE_FACTOR = """---
identification: marker
---
X =~ x1 + x2 + x3
Z =~ z1 + z2 + z3
Y =~ y1 + y2 + y3
Y ~ X + Z + X:Z
"""
#: generating values: loadings 1 (0.8 for the second and third items), paths 0.3, product 0.2
THREE_FACTOR_TRUTH = {"Y~X": 0.3, "Y~Z": 0.3, "Y~X:Z": 0.2, "X~~Z": 0.3}


def three_factor_truth() -> np.ndarray:
    """The three-factor model's generating values (item means about 1)."""
    partable = build_partable(THREE_FACTOR)
    par = []
    for name, row in zip(partable.names, partable.parameters.itertuples(), strict=True):
        if name in THREE_FACTOR_TRUTH:
            par.append(THREE_FACTOR_TRUTH[name])
        elif row.free == 0:
            par.append(float(row.value))
        elif row.op == "=~":
            par.append(0.8)
        elif row.op == "~1":
            par.append(1.0)
        else:  # variances
            par.append(0.5 if row.lhs[0].islower() else 1.0)
    return np.array(par)


def three_factor_data(n: int, seed: int = 1) -> pd.DataFrame:
    """``n`` answers simulated from the three-factor model."""
    return simulate(build_partable(THREE_FACTOR), three_factor_truth(), n, seed, scale=None)


def likelihood_fn(partable, data: pd.DataFrame, par: np.ndarray, nodes: int, fused: bool):
    """logp + gradient of the quadrature log-likelihood alone (adapted rule, ``nodes`` per
    respondent; ``fused``: the fused op, else PyTensor's graph of the same rule), numba, and
    ``par`` to call it at."""
    rep = representation(partable)
    layout = Layout.of(partable, rep)
    y = data[rep.items].to_numpy(dtype=float)
    vector = pt.dvector("par")
    logp = pt.sum(respondent_loglik(pt, vector, rep, layout, y, nodes, fused=fused))
    return pytensor.function([vector], [logp, pt.grad(logp, vector)], mode="NUMBA"), par


def default_nodes(partable) -> int:
    """The adapted rule's node count for this model (:func:`adapted_nodes`)."""
    return adapted_nodes(Layout.of(partable, representation(partable)))


def interleaved_ms(calls: dict, rounds: int = 10, each: int = 30) -> dict:
    """Median milliseconds per call of each ``calls`` entry (name: (function, argument)),
    measured in alternating rounds so that all see the same load."""
    times: dict = {name: [] for name in calls}
    for fn, arg in calls.values():
        fn(arg)
    for _ in range(rounds):
        for name, (fn, arg) in calls.items():
            for _ in range(each):
                start = time.perf_counter()
                fn(arg)
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def gradient_tables() -> None:
    """The likelihood alone, fused op against PyTensor's graph of the same rule: the
    three-factor model at N = 500, 2000, 8000, then the fused op against the node count at
    N = 2000, and Study A. The whole model's gradient (priors included), quadrature against
    conditional, at N = 2000 and on Study A."""
    three = build_partable(THREE_FACTOR)
    study_a = build_partable((ROOT / "models" / "impulse_buying.lav").read_text())
    answers = pd.read_csv(ROOT / "data" / "impulse_buying.csv")
    truth = three_factor_truth()
    study_truth = truth_vector(study_a, pd.read_csv(ROOT / "data" / "impulse_buying_truth.csv"))
    print(f"# load {os.getloadavg()[0]:.1f}", flush=True)
    for n in (500, 2000, 8000):
        data = three_factor_data(n)
        calls = {
            f"three-factor N={n} {kind}": likelihood_fn(
                three, data, truth, default_nodes(three), kind == "fused"
            )
            for kind in ("fused", "graph")
        }
        print(interleaved_ms(calls), f"load {os.getloadavg()[0]:.1f}", flush=True)
    data = three_factor_data(2000)
    calls = {
        f"three-factor N=2000 fused nodes={k}": likelihood_fn(three, data, truth, k, True)
        for k in (3, 4, 6, 8)
    }
    print(interleaved_ms(calls), f"load {os.getloadavg()[0]:.1f}", flush=True)
    calls = {
        f"Study A {kind}": likelihood_fn(
            study_a, answers, study_truth, default_nodes(study_a), kind == "fused"
        )
        for kind in ("fused", "graph")
    }
    print(interleaved_ms(calls), f"load {os.getloadavg()[0]:.1f}", flush=True)
    calls = {}
    for label, tab, frame in (("three-factor N=2000", three, data), ("Study A", study_a, answers)):
        for likelihood in ("quadrature", "conditional"):
            built = pymc_model(tab, frame, likelihood=likelihood)
            calls[f"{label} whole model {likelihood}"] = (
                built.model.compile_dlogp(mode="NUMBA"),
                built.model.initial_point(),
            )
    print(interleaved_ms(calls), f"load {os.getloadavg()[0]:.1f}", flush=True)


def score_rows(rounds: int = 5) -> None:
    """The moderator's scores after a quadrature fit (:func:`score_row`) on Study A and on the
    three-factor model at N = 2000."""
    study_a = build_partable((ROOT / "models" / "impulse_buying.lav").read_text())
    score_row(
        "Study A",
        study_a,
        pd.read_csv(ROOT / "data" / "impulse_buying.csv"),
        truth_vector(study_a, pd.read_csv(ROOT / "data" / "impulse_buying_truth.csv")),
        rounds,
    )
    score_row(
        "three-factor",
        build_partable(THREE_FACTOR),
        three_factor_data(2000),
        three_factor_truth(),
        rounds,
    )


def score_row(label: str, tab, frame: pd.DataFrame, truth: np.ndarray, rounds: int) -> None:
    """``affine_moderator_draws`` at 4 chains x 1000 draws (the generating values plus noise of
    SD 0.01): the whole call (median wall and CPU seconds of ``rounds``), then CPU ms per draw
    of its parts in alternating rounds: the parameters' basis (NumPy), the coefficient table
    (the basis and the numba table), the uniform numbers, the draw on the cells (numba)."""
    edges = np.linspace(-ADAPTED_SPAN, ADAPTED_SPAN, ADAPTED_CELLS + 1)
    cells = (edges[1:] + edges[:-1]) / 2
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    y = frame[rep.items].to_numpy(dtype=float)
    patterns = Patterns.of(y)
    par = truth + 0.01 * np.random.default_rng(0).normal(size=(4, 1000, len(truth)))
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        affine_moderator_draws(rep, layout, par, y, patterns, np.random.default_rng(1))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    table = table_function(rep, layout, y, patterns)
    flat = par.reshape(-1, len(truth))[:500]
    coefficients = table(flat[0])
    rng = np.random.default_rng(1)
    uniforms = rng.uniform(size=(len(y), 2))
    parts = {
        "basis": lambda theta: affine_basis(np, theta, rep, layout),
        "table": table,
        "uniforms": lambda _: rng.uniform(size=(len(y), 2)),
        "draw": lambda _: draw_on_cells(
            coefficients, cells, edges[1] - edges[0], uniforms, layout.degree
        ),
    }
    ms: dict = {name: [] for name in parts}
    for _ in range(rounds):
        for name, part in parts.items():
            start = time.process_time()
            for theta in flat:
                part(theta)
            ms[name].append(1000 * (time.process_time() - start) / len(flat))
    medians = {name: round(float(np.median(t)), 4) for name, t in ms.items()}
    print(
        f"{label} N={len(y)}: whole {np.median(wall):.3f} s wall ({np.median(cpu):.3f} CPU);"
        f" ms per draw {medians}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def fit_rows(limit: float, seeds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-quadrature-"))
    (folder / "three_factor.lav").write_text(THREE_FACTOR)
    three_factor_data(2000).to_csv(folder / "three_factor.csv", index=False)
    three = str(folder / "three_factor")
    # per model: conditional and quadrature at the CLI defaults (the quadrature's graph compiled
    # on its first use, cached afterwards: run twice to see both), interleaved so that both
    # likelihoods see the same load; then the quadrature at its defaults
    # (sampling.samplers.QUADRATURE_DEFAULTS) at ``seeds`` more seeds
    workloads = []
    for label, model, extra in (
        ("study_a", "impulse_buying", []),
        ("three_factor_n2000", three, ["--scale", "none"]),
    ):
        for likelihood in ("conditional", "quadrature"):
            name = f"{label}_{likelihood}_cli_defaults"
            workloads.append((name, model, model, ["--likelihood", likelihood, *extra]))
        for seed in range(1, seeds + 1):
            name = f"{label}_quadrature_seed{seed}"
            seeded = ["--likelihood", "quadrature", "--seed", str(seed), *extra]
            workloads.append((name, model, model, seeded))
    rows = []
    for name, model, data, extra in workloads:
        row = run_one(name, model, data, extra, [], limit)
        if "_estimates" in row:
            row["min_ess_tail"] = round(float(row["_estimates"].ess_tail.min()))
        rows.append({k: v for k, v in row.items() if not k.startswith("_")})
        print(pd.DataFrame([rows[-1]]).to_string(index=False), flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["grad", "fit", "scores"], default=None)
    parser.add_argument("--limit", type=float, default=1800)
    parser.add_argument("--seeds", type=int, default=3, help="more seeds of the quadrature's rows")
    args = parser.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.node()} "
        f"Python {platform.python_version()}"
    )
    if args.only in (None, "grad"):
        gradient_tables()
    if args.only in (None, "scores"):
        score_rows()
    if args.only in (None, "fit"):
        fit_rows(args.limit, args.seeds)


if __name__ == "__main__":
    main()
