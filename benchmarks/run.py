"""Benchmark the CLI's fits: wall time (import + compile + sample), min bulk ESS, ESS/s, RSS.

    python benchmarks/run.py            # 4 chains x 1000 draws after 1000 tuning
    python benchmarks/run.py --quick    # 2 chains x 300 draws: a 2-3 minute smoke version
    python benchmarks/run.py --only hs  # rows whose name contains 'hs'

Each row runs ``python -m bayes_sor fit`` in a fresh process, as a user would, so the wall time
includes import and compilation. The naive baseline is the PyMC-notebook approach: latent scores
sampled (conditional likelihood) with PyMC's own NUTS.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]

#: name -> (model, data, extra CLI arguments)
WORKLOADS = {
    "hs_cfa_marginal_nutpie": ("holzinger_swineford", "holzinger_swineford",
                               ["--likelihood", "marginal", "--scale", "none"]),
    "hs_cfa_marginal_pymc": ("holzinger_swineford", "holzinger_swineford",
                             ["--likelihood", "marginal", "--scale", "none",
                              "--sampler", "pymc"]),
    "hs_cfa_naive_pymc_latent_scores": ("holzinger_swineford", "holzinger_swineford",
                                        ["--likelihood", "conditional", "--scale", "none",
                                         "--sampler", "pymc"]),
    "pd_sem_marginal_nutpie": ("political_democracy", "political_democracy",
                               ["--likelihood", "marginal", "--scale", "none"]),
    "study_a_conditional_nutpie": ("impulse_buying", "impulse_buying", []),
    "study_a_ordinal_nutpie": ("impulse_buying", "impulse_buying", ["--ordinal", "all"]),
}


def run_one(name: str, model: str, data: str, extra: list[str], sampling: list[str]) -> dict:
    """Fit one workload in a child process and read its figures back from the run folder."""
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-")) / "run"
    command = [sys.executable, "-m", "bayes_sor", "fit", str(ROOT / "models" / f"{model}.lav"),
               "--data", str(ROOT / "data" / f"{data}.csv"), "--out", str(out),
               "--allow-warnings", "--no-progress", *sampling, *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    peak_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    if proc.returncode != 0:
        return {"workload": name, "wall_s": round(wall, 1), "status": proc.stderr.strip()[-200:]}
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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    sampling = (["--chains", "2", "--draws", "300", "--tune", "300"] if args.quick
                else ["--chains", "4", "--draws", "1000", "--tune", "1000"])
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.processor() or ''} "
          f"Python {platform.python_version()}; sampling: {' '.join(sampling)}")
    rows = []
    for name, (model, data, extra) in WORKLOADS.items():
        if args.only in name:
            rows.append(run_one(name, model, data, extra, sampling))
            print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1),
                  flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
