"""Benchmark the quadrature likelihood of latent interactions against the conditional one
(issue 23): CLI fits side by side, and the time per gradient against N and the node count.

    python benchmarks/quadrature.py               # everything (~30-60 min on 2 cores)
    python benchmarks/quadrature.py --only grad   # the time-per-gradient tables only
    python benchmarks/quadrature.py --only fit    # the CLI rows only

CLI rows: ``python -m bayes_sor fit`` at the CLI's defaults, in a fresh process (wall time
includes import, compilation, sampling, the moderator scores and the report), on Study A and
on the three-factor interaction model of issue 23 (``Y ~ X + Z + X:Z``, three items each, item
means about 1, marker identification, N = 2000, simulated here). Gradient rows: logp + gradient
of the PyMC model compiled with PyTensor's numba backend at the starting point, the median of
200 evaluations (compilation excluded).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
from run import ROOT, run_one

from bayes_sor.model.build import pymc_model
from bayes_sor.model.quadrature import ADAPTED_NODES
from bayes_sor.model.simulate import simulate
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


def three_factor_data(n: int, seed: int = 1) -> pd.DataFrame:
    """``n`` answers simulated from the three-factor model (item means about 1)."""
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
    return simulate(partable, np.array(par), n, seed, scale=None)


def gradient_ms(built, data: pd.DataFrame | None = None, fn=None) -> tuple[float, object]:
    """Median milliseconds of one gradient evaluation (numba backend; the gradient graph holds
    the log density's forward pass), and the compiled function. ``data``: answers swapped into
    the compiled model ``fn`` of ``built`` (the quadrature graph does not depend on N)."""
    fn = fn or built.model.compile_dlogp(mode="NUMBA")
    if data is not None:
        with built.model:
            pm.set_data(
                {"y": data[built.representation.items].to_numpy(dtype=float)},
                coords={"obs": np.arange(len(data))},
            )
    point = built.model.initial_point()
    fn(point)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        fn(point)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), fn


def gradient_tables() -> None:
    """Against N: the quadrature model compiled once, answers of N = 500, 2000, 8000 swapped
    in; the conditional one (latent scores: its graph grows with N) at N = 2000. Against the
    node count (nodes per respondent of the adapted rule): the three-factor model at N = 2000.
    Study A at the default node count."""
    three = build_partable(THREE_FACTOR)
    rows = []

    def row(model: str, n: int, likelihood: str, nodes: int | str, ms: float) -> None:
        rows.append(
            {"model": model, "N": n, "likelihood": likelihood, "nodes": nodes, "ms": round(ms, 3)}
        )
        print(rows[-1], flush=True)

    built = pymc_model(three, three_factor_data(500), likelihood="quadrature")
    fn = None
    for n in (500, 2000, 8000):
        ms, fn = gradient_ms(built, three_factor_data(n), fn)
        row("three-factor", n, "quadrature", ADAPTED_NODES, ms)
    conditional = pymc_model(three, three_factor_data(2000), likelihood="conditional")
    row("three-factor", 2000, "conditional", "", gradient_ms(conditional)[0])
    for nodes in (4, 8, 12, 24):
        built = pymc_model(three, three_factor_data(2000), likelihood="quadrature", nodes=nodes)
        row("three-factor", 2000, "quadrature", nodes, gradient_ms(built)[0])
    study_a = build_partable((ROOT / "models" / "impulse_buying.lav").read_text())
    answers = pd.read_csv(ROOT / "data" / "impulse_buying.csv")
    for likelihood in ("quadrature", "conditional"):
        built = pymc_model(study_a, answers, likelihood=likelihood)
        row(
            "Study A",
            len(answers),
            likelihood,
            ADAPTED_NODES if likelihood == "quadrature" else "",
            gradient_ms(built)[0],
        )
    print(pd.DataFrame(rows).to_string(index=False))


def fit_rows(limit: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-quadrature-"))
    (folder / "three_factor.lav").write_text(THREE_FACTOR)
    three_factor_data(2000).to_csv(folder / "three_factor.csv", index=False)
    three = str(folder / "three_factor")
    # per model: quadrature (its graph compiled on first use), conditional, quadrature again
    # (compiled model cached), interleaved so that both likelihoods see the same load
    workloads = []
    for label, model, extra in (
        ("study_a", "impulse_buying", []),
        ("three_factor_n2000", three, ["--scale", "none"]),
    ):
        for likelihood, run in (("quadrature", "first"), ("conditional", ""), ("quadrature", "")):
            name = f"{label}_{likelihood}_cli_defaults" + (f"_{run}" if run else "")
            workloads.append((name, model, model, ["--likelihood", likelihood, *extra]))
    rows = []
    for name, model, data, extra in workloads:
        rows.append(run_one(name, model, data, extra, [], limit))
        print(pd.DataFrame([rows[-1]]).to_string(index=False), flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["grad", "fit"], default=None)
    parser.add_argument("--limit", type=float, default=1800)
    args = parser.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.node()} "
        f"Python {platform.python_version()}"
    )
    if args.only in (None, "grad"):
        gradient_tables()
    if args.only in (None, "fit"):
        fit_rows(args.limit)


if __name__ == "__main__":
    main()
