"""The benchmark scripts' own machinery (their figures are in benchmarks/RESULTS.md, not tested)."""

import importlib.util
import os
import subprocess
import sys

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


def test_a_rows_cpu_seconds_count_its_child_processes_work_not_its_waiting(tmp_path):
    """CPU seconds (the load-robust figure beside wall time) include a waited-for child's
    work, as Stan's chains run in child processes, and not time spent asleep."""
    spin = (
        "import multiprocessing as mp, time\n"
        "def spin():\n"
        "    start = time.process_time()\n"
        "    while time.process_time() - start < 0.6:\n"
        "        pass\n"
        "if __name__ == '__main__':\n"
        "    child = mp.get_context('fork').Process(target=spin)\n"
        "    child.start(); child.join(); time.sleep(0.6)\n"
    )
    script = tmp_path / "spin.py"
    script.write_text(spin)
    status, wall, cpu, _, _ = bench_run._timed(
        [sys.executable, str(script)], 60, dict(os.environ), tmp_path
    )
    assert status == 0
    assert 0.6 <= cpu < wall - 0.5
