"""The benchmark scripts' own machinery (their figures are in benchmarks/RESULTS.md, not tested)."""

import importlib.util
import subprocess

from paths import ROOT

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
bench_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_run)


def test_a_hidden_module_is_absent_from_the_benchmarked_command():
    """``--hide`` runs bayes_sor as if a module were not installed: hiding pandas, which
    bayes_sor needs, must fail the command on that import, and the plain command must run."""
    hidden = subprocess.run(
        [*bench_run.bayes_sor_command(["pandas"]), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert hidden.returncode != 0
    assert "ModuleNotFoundError: import of pandas halted" in hidden.stderr, hidden.stderr[-500:]
    plain = subprocess.run(
        [*bench_run.bayes_sor_command(), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert plain.returncode == 0 and "fit" in plain.stdout, plain.stderr[-500:]
