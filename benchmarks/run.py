"""Benchmark the CLI's fits: wall time (import + compile + sample), min bulk ESS, ESS/s, RSS;
then SBC throughput (the rows of issue 9's table).

    python benchmarks/run.py            # fits: 4 chains x 1000 draws after 1000 tuning; SBC of
                                        # the small model, 200 simulations, 2 workers
    python benchmarks/run.py --quick    # 4 fits of 2 chains x 300 draws, SBC of 30 simulations:
                                        # a 2-minute smoke version
    python benchmarks/run.py --slow     # adds SBC of the Study A model, 200 simulations (~25 min)
    python benchmarks/run.py --only hs  # rows whose name contains 'hs'

Each row runs ``python -m bayes_sor fit`` in a fresh process, as a user would, so the wall time
includes import and compilation. The naive baseline is the PyMC-notebook approach: latent scores
sampled (conditional likelihood) with PyMC's own NUTS.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]

#: name -> (model, data, extra CLI arguments)
WORKLOADS = {
    "hs_cfa_marginal_nutpie": (
        "holzinger_swineford",
        "holzinger_swineford",
        ["--likelihood", "marginal", "--scale", "none"],
    ),
    # Same command again: PyTensor's numba cache now holds the compiled kernels.
    "hs_cfa_marginal_nutpie_cached": (
        "holzinger_swineford",
        "holzinger_swineford",
        ["--likelihood", "marginal", "--scale", "none"],
    ),
    "hs_cfa_marginal_pymc": (
        "holzinger_swineford",
        "holzinger_swineford",
        ["--likelihood", "marginal", "--scale", "none", "--sampler", "pymc"],
    ),
    "hs_cfa_conditional_nutpie": (
        "holzinger_swineford",
        "holzinger_swineford",
        ["--likelihood", "conditional", "--scale", "none"],
    ),
    "hs_cfa_naive_pymc_latent_scores": (
        "holzinger_swineford",
        "holzinger_swineford",
        ["--likelihood", "conditional", "--scale", "none", "--sampler", "pymc"],
    ),
    "pd_sem_marginal_nutpie": (
        "political_democracy",
        "political_democracy",
        ["--likelihood", "marginal", "--scale", "none"],
    ),
    "pd_sem_marginal_nutpie_cached": (
        "political_democracy",
        "political_democracy",
        ["--likelihood", "marginal", "--scale", "none"],
    ),
    "study_a_conditional_nutpie": ("impulse_buying", "impulse_buying", []),
    # The CLI's default draws (2000 per chain): what the ESS >= 400 gate needs for Study A.
    "study_a_conditional_nutpie_default_draws": (
        "impulse_buying",
        "impulse_buying",
        ["--draws", "2000"],
    ),
    "study_a_conditional_pymc": ("impulse_buying", "impulse_buying", ["--sampler", "pymc"]),
    "study_a_ordinal_nutpie": ("impulse_buying", "impulse_buying", ["--ordinal", "all"]),
}

#: The rows of ``--quick``: one of each kind of model, each well under a minute.
QUICK = (
    "hs_cfa_marginal_nutpie",
    "hs_cfa_marginal_nutpie_cached",
    "pd_sem_marginal_nutpie",
    "study_a_conditional_nutpie",
)


def run_one(
    name: str, model: str, data: str, extra: list[str], sampling: list[str], limit: float
) -> dict:
    """Fit one workload in a child process and read its figures back from the run folder."""
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-")) / "run"
    command = [
        sys.executable,
        "-m",
        "bayes_sor",
        "fit",
        str(ROOT / "models" / f"{model}.lav"),
        "--data",
        str(ROOT / "data" / f"{data}.csv"),
        "--out",
        str(out),
        "--allow-warnings",
        "--no-progress",
        *sampling,
        *extra,
    ]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
        timer = threading.Timer(limit, proc.kill)
        timer.start()
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would be the maximum so far).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
        wall = time.perf_counter() - start
        stderr.seek(0)
        message = stderr.read().decode(errors="replace").strip()[-200:]
    peak_mb = usage.ru_maxrss / 1024
    if proc.returncode != 0:
        status = f"killed after {limit:.0f} s" if wall >= limit else message
        return {"workload": name, "wall_s": round(wall, 1), "status": status}
    est = pd.read_csv(out / "estimates.csv")
    free = est[est.free > 0]
    posterior_mb = (out / "posterior.nc").stat().st_size / 2**20
    min_ess = float(free.ess_bulk.min())
    return {
        "workload": name,
        "wall_s": round(wall, 1),
        "min_ess_bulk": round(min_ess),
        "ess_per_s": round(min_ess / wall, 1),
        "max_r_hat": round(float(free.r_hat.max()), 3),
        "divergences": _divergences(out),
        "peak_rss_mb": round(peak_mb),
        "posterior_mb": round(posterior_mb, 1),
        "status": "ok",
    }


def _divergences(out: Path) -> int:
    with xr.open_datatree(out / "posterior.nc") as tree:
        return int(tree["sample_stats"]["diverging"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--slow", action="store_true", help="also the 200-simulation SBC of the Study A model"
    )
    parser.add_argument("--only", default="")
    parser.add_argument(
        "--limit",
        type=float,
        default=1200,
        help="seconds after which a workload is killed and reported as such",
    )
    args = parser.parse_args()
    sampling = (
        ["--chains", "2", "--draws", "300", "--tune", "300"]
        if args.quick
        else ["--chains", "4", "--draws", "1000", "--tune", "1000"]
    )
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.processor() or ''} "
        f"Python {platform.python_version()}; sampling: {' '.join(sampling)}"
    )
    rows = []
    for name, (model, data, extra) in WORKLOADS.items():
        if args.only in name and (name in QUICK or not args.quick):
            rows.append(run_one(name, model, data, extra, sampling, args.limit))
            print(
                pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1), flush=True
            )
    print()
    print(pd.DataFrame(rows).to_string(index=False))
    sbc_rows = sbc_benchmarks(args.only, args.quick, args.slow)
    if sbc_rows:
        print()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(pd.DataFrame(sbc_rows).to_string(index=False))


def sbc_benchmarks(only: str, quick: bool, slow: bool) -> list[dict]:
    """SBC rows, each a fresh run on 2 workers (compilation included in the wall time): the
    small model at sbc_throughput's simulation counts; with ``slow``, 200 of Study A."""
    from sbc_throughput import WORKLOADS as SBC
    from sbc_throughput import measure

    rows = []
    for name, (model, nobs, settings, sims) in SBC.items():
        n_sims = (
            sims[quick]
            if name.startswith("two_factor")
            else 200
            if slow and name.startswith("study_a ")
            else 0
        )
        if n_sims and only in f"sbc {name}":
            rows.append({"workload": f"sbc {name}", **measure(model, nobs, settings, n_sims, 2)})
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
