"""SBC throughput: simulations per minute for a small model and the Study A model, 1 and 2
workers.

    python benchmarks/sbc_throughput.py                 # two_factor: 200 sims, small: 100,
                                                        # Study A: 6
    python benchmarks/sbc_throughput.py --quick         # 30, 30 and 2 sims
    python benchmarks/sbc_throughput.py --only small --workers 2

Each row is a fresh :func:`bayes_sor.sbc.run.run_sbc` run (new worker processes, so compilation is
included in the wall time). ``steady`` excludes it: workers / mean time per simulation, leaving
out each worker's first simulation (the one that compiled the model). On a machine shared with
other jobs, wall times measure the contention too; ``cpu_s_per_sim`` (CPU time of the worker
process per simulation) does not.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bayes_sor.sbc.run import make_config, run_sbc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the SBC models are the tests' (tests/sbc_models.py)
from sbc_models import TWO_FACTOR, mediation_model, study_a_model  # noqa: E402

#: name -> (model, N, sampler settings, simulations in a full / quick run)
WORKLOADS = {
    "two_factor (2 factors, 6 items, N = 150, marginal)": (
        TWO_FACTOR,
        150,
        {"draws": 1000, "tune": 1000},
        (200, 30),
    ),
    "small (1 factor + 2 single items, marginal)": (
        mediation_model(),
        200,
        {"draws": 1000, "tune": 1000},
        (100, 30),
    ),
    "study_a (7 latents, interaction, conditional)": (
        study_a_model(ROOT),
        357,
        {"draws": 500, "tune": 500},
        (6, 2),
    ),
    "study_a_ordinal (7 latents, interaction, 33 ordinal items)": (
        study_a_model(ROOT),
        357,
        {"draws": 500, "tune": 500, "ordinal": "all"},
        (4, 2),
    ),
}


def measure(model: str | Path, nobs: int, settings: dict, n_sims: int, workers: int) -> dict:
    config = make_config(model, nobs, chains=1, seed=1, **settings)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_sbc(config, Path(tmp) / "run", n_sims, workers=workers, progress=False)
        wall = time.perf_counter() - start
    ranks = result.ranks
    ok = ranks[ranks.error == ""]
    # each worker's first simulation compiled the model: the largest times
    steady = ok.sort_values("sim_seconds").iloc[: max(len(ok) - workers, 1)]
    return {
        "workers": workers,
        "sims": n_sims,
        "failed": len(ranks) - len(ok),
        "wall_s": round(wall, 1),
        "first_sim_s": round(float(ok.sim_seconds.max()), 1),
        "fit_s_median": round(float(ok.fit_seconds.median()), 2),
        "sims_per_min": round(60 * n_sims / wall, 1),
        "steady_sims_per_min": round(60 * workers / float(steady.sim_seconds.mean()), 1),
        "cpu_s_per_sim": round(float(steady.cpu_seconds.median()), 2),
        # what the same workers would reach with a core each (a shared machine gives less)
        "sims_per_min_per_core": round(60 / float(steady.cpu_seconds.median()), 1),
        "L_median": int(ok.L.median()),
        "verdict": result.verdict.text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="workloads whose name contains this text")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    for name, (model, nobs, settings, sims) in WORKLOADS.items():
        if args.only and args.only not in name:
            continue
        for workers in args.workers:
            row = {"workload": name, **measure(model, nobs, settings, sims[args.quick], workers)}
            print(row, flush=True)
            rows.append(row)
    print(
        f"\n{platform.node()}: {platform.processor() or platform.machine()}, "
        f"draws/tune per workload: { {k: v[2] for k, v in WORKLOADS.items()} }, 1 chain"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
