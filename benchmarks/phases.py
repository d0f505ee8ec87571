"""Where the seconds of one ``fit`` command go, from its own stage lines: each stage, and the rest
of the process's wall time (Python's start and the imports before the first stage line, the
console tables and the exit after the last).

    python benchmarks/phases.py                     # HS CFA, fit --no-report, 4 x 1000 after 1000
    python benchmarks/phases.py --repeat 5 --baseline /work/main    # medians, interleaved A/B
    python benchmarks/phases.py -- MODEL.lav --data DATA.csv ...     # another fit command
    python benchmarks/phases.py --hide dask,distributed   # as installed without the test extra
    python benchmarks/phases.py --compile-each-run  # bytecode not cached (this VM's default)

Each run is a fresh process, with its modules' bytecode cached as an installed package has it
(:func:`run.command_env`), after one untimed run per checkout that fills the caches; "CPU
seconds" are the whole process's (user + system). A stage's time runs from its line to the
next one; the stage "compiling ... for nutpie" of a recorded build includes importing nutpie
(and with it numba) and loading the cached callbacks.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from run import bayes_sor_command, command_env

ROOT = Path(__file__).resolve().parents[1]
HS = [
    str(ROOT / "models/holzinger_swineford.lav"),
    "--data",
    str(ROOT / "data/holzinger_swineford.csv"),
    "--likelihood",
    "marginal",
    "--scale",
    "none",
    "--no-report",
    "--chains",
    "4",
    "--draws",
    "1000",
    "--tune",
    "1000",
]
_STAGE = re.compile(r"^\[ *(\d+\.\d) s\] (.*)$")


def phases(
    fit_args: list[str], code: Path, hidden: list[str], cached: bool = True
) -> dict[str, float]:
    """Seconds per phase of one ``python -m bayes_sor fit`` run with ``code`` on PYTHONPATH,
    without the ``hidden`` modules (:func:`run.bayes_sor_command`), its bytecode cached unless
    ``cached`` is false, and the process's CPU seconds."""
    out = Path(tempfile.mkdtemp(prefix="phases-")) / "run"
    command = [*bayes_sor_command(hidden), "fit", *fit_args, "--out", str(out)]
    env = command_env(code) if cached else {**os.environ, "PYTHONPATH": str(code)}
    command += ["--no-progress", "--allow-warnings"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # in the checkout itself: ``python -m`` imports from the working folder before PYTHONPATH
    proc = subprocess.run(command, capture_output=True, text=True, cwd=code, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-500:])
    # the stage clock starts once the imports are done; after "finished" come the console
    # tables and the exit
    outside = "start, imports; console tables, exit"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages, last = stage_seconds(proc.stdout, out)
    return {outside: wall - last, "total": wall, "CPU seconds": cpu, **stages}


def stage_seconds(stdout: str, out: Path) -> tuple[dict[str, float], float]:
    """Seconds per stage of a fit's output, from each stage line to the next, and the clock at
    the last line. A stage's label is its line before the first colon, with the run's own
    folder ("writing /tmp/phases-.../run/ (posterior.nc, ...)") named OUT, so that every
    run labels it alike; a label met twice adds up."""
    stamps = [(float(m[1]), m[2]) for m in map(_STAGE.match, stdout.splitlines()) if m]
    seconds: dict[str, float] = {}
    for (at, name), (until, _) in itertools.pairwise(stamps):
        label = name.replace(str(out), "OUT").split(":")[0]
        seconds[label] = seconds.get(label, 0.0) + until - at
    return seconds, stamps[-1][0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a checkout of earlier code to interleave")
    parser.add_argument(
        "--hide", default="", help="comma-separated modules to run without (e.g. dask,distributed)"
    )
    parser.add_argument(
        "--compile-each-run",
        action="store_true",
        help="do not cache bytecode: every module compiled from source in every run",
    )
    parser.add_argument("fit_args", nargs="*", help="fit's arguments (default: HS, see above)")
    args = parser.parse_args()
    fit_args = args.fit_args or HS
    codes = {"baseline": args.baseline} if args.baseline else {}
    codes["current"] = ROOT
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in codes}
    hidden = [name for name in args.hide.split(",") if name]
    cached = not args.compile_each_run
    for code in codes.values():  # fills the numba and bytecode caches, and the OS's
        phases(fit_args, code, hidden, cached)
    loads = []
    for _ in range(args.repeat):
        for label, code in codes.items():
            loads.append(os.getloadavg()[0])
            runs[label].append(phases(fit_args, code, hidden, cached))
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}; load {min(loads):.1f}-{max(loads):.1f}; "
        f"hidden: {args.hide or 'none'}; bytecode {'cached' if cached else 'compiled each run'}"
    )
    for label, rows in runs.items():
        print(f"{label} (median of {len(rows)}):")
        for name in rows[0]:
            values = [r[name] for r in rows if name in r]
            print(f"  {name:40s} {statistics.median(values):6.2f} s")


if __name__ == "__main__":
    main()
