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
from run import ROOT, run_one

from bayes_sor.model.build import pymc_model
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


def gradient_ms(partable, data: pd.DataFrame, likelihood: str, nodes: int = 48) -> float:
    """Median milliseconds of one gradient evaluation (numba backend; the gradient graph holds
    the log density's forward pass)."""
    built = pymc_model(partable, data, likelihood=likelihood, nodes=nodes)
    fn = built.model.compile_dlogp(mode="NUMBA")
    point = built.model.initial_point()
    fn(point)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        fn(point)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def gradient_tables() -> None:
    three = build_partable(THREE_FACTOR)
    rows = []
    for n in (500, 2000, 8000):
        data = three_factor_data(n)
        for likelihood in ("quadrature", "conditional"):
            rows.append(
                {"model": "three-factor", "N": n, "likelihood": likelihood, "nodes": 48}
                | {"ms_per_gradient": round(gradient_ms(three, data, likelihood), 3)}
            )
            print(rows[-1], flush=True)
    study_a = build_partable((ROOT / "models" / "impulse_buying.lav").read_text())
    answers = pd.read_csv(ROOT / "data" / "impulse_buying.csv")
    for nodes in (16, 32, 48, 64):
        for name, partable, data in (
            ("Study A", study_a, answers),
            ("three-factor", three, three_factor_data(2000)),
        ):
            rows.append(
                {"model": name, "N": len(data), "likelihood": "quadrature", "nodes": nodes}
                | {"ms_per_gradient": round(gradient_ms(partable, data, "quadrature", nodes), 3)}
            )
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


def fit_rows(limit: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-quadrature-"))
    (folder / "three_factor.lav").write_text(THREE_FACTOR)
    three_factor_data(2000).to_csv(folder / "three_factor.csv", index=False)
    three = str(folder / "three_factor")
    workloads = [
        (
            "study_a_quadrature_cli_defaults",
            "impulse_buying",
            "impulse_buying",
            ["--likelihood", "quadrature"],
        ),
        (
            "study_a_conditional_cli_defaults",
            "impulse_buying",
            "impulse_buying",
            ["--likelihood", "conditional"],
        ),
        (
            "three_factor_n2000_quadrature_cli_defaults",
            three,
            three,
            ["--likelihood", "quadrature", "--scale", "none"],
        ),
        (
            "three_factor_n2000_conditional_cli_defaults",
            three,
            three,
            ["--likelihood", "conditional", "--scale", "none"],
        ),
    ]
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
