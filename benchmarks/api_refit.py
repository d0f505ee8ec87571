"""Benchmark a refit in a warm Python session (issue 21): ``bayes_sor.fit`` of the HS CFA,
marginal likelihood, nutpie, 4 chains x 1000 draws after 1000 tuning (table 1's settings),
repeated in one process after a first fit that compiled the model (or found it cached).

    python benchmarks/api_refit.py            # 1 warm-up fit + 5 timed refits
    python benchmarks/api_refit.py --refits 2

A notebook pays import and compilation once; each refit then builds the PyMC model again
(the compiled model comes from the cache), samples and summarises. Prints each stage's
seconds of the last refit, every refit's wall time and their median, and the machine's
cores and load (other processes on a shared machine slow the sampler).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import bayes_sor as bs
from bayes_sor.sampling.stages import Stages

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "holzinger_swineford.lav"
DATA = ROOT / "data" / "holzinger_swineford.csv"
OPTIONS = {"scale": "none", "likelihood": "marginal", "chains": 4, "draws": 1000, "tune": 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refits", type=int, default=5)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{platform.platform()}, {cores} usable core(s), load {os.getloadavg()}")
    start = time.perf_counter()
    bs.fit(MODEL, DATA, **OPTIONS)
    print(f"first fit (import done; compile or cache): {time.perf_counter() - start:.1f} s")
    times = []
    for k in range(args.refits):
        stage = Stages() if k == args.refits - 1 else None
        start = time.perf_counter()
        res = bs.fit(MODEL, DATA, **OPTIONS, **({"stage": stage} if stage else {}))
        times.append(time.perf_counter() - start)
    print("refits: " + ", ".join(f"{t:.2f} s" for t in times))
    print(
        f"median refit {statistics.median(times):.2f} s; min bulk ESS "
        f"{res.diagnostics.min_ess_bulk:.0f}; converged {res.converged}; "
        f"load after {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
