"""The benchmark scripts' own machinery (their figures are in benchmarks/RESULTS.md, not tested)."""

import importlib.util
import os
import subprocess
import sys

import pytest
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


def test_a_benchmarked_command_keeps_its_bytecode_outside_the_checkout(tmp_path, monkeypatch):
    """A benchmarked command runs as an installed package does, its modules' bytecode cached
    between runs also where the machine sets PYTHONDONTWRITEBYTECODE (this VM does), in a
    folder of its own rather than in the checkout (``code``) it runs."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(bench_run, "PYCACHE", tmp_path / "cache")
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe_module.py").write_text("VALUE = 1\n")
    env = bench_run.command_env(code)
    subprocess.run([sys.executable, "-c", "import probe_module"], env=env, cwd=tmp_path, check=True)
    assert list((tmp_path / "cache").rglob("probe_module*.pyc"))
    assert not list(code.rglob("*.pyc"))


def test_every_fit_rows_model_exists_and_the_two_group_row_splits_study_a_by_gender():
    """Each bayes_sor row's model file exists (a bundled one or a benchmark's own variant);
    the two-group Study A row fits the interaction-free Study A by the data's gender column,
    whose two levels each have more respondents than items."""
    import pandas as pd

    from bayes_sor.spec.partable import build_partable

    for model, _, extra in bench_run.WORKLOADS.values():
        if extra != bench_run.STAN:
            assert bench_run.model_file(model).is_file(), model
    model, data, extra = bench_run.WORKLOADS["study_a_marginal_two_group_nutpie"]
    assert bench_run.WORKLOADS["study_a_marginal_nutpie"][:2] == (model, data)
    pt = build_partable(bench_run.model_file(model).read_text())
    assert not pt.interactions
    answers = pd.read_csv(ROOT / "data" / f"{data}.csv")
    sizes = answers[extra[extra.index("--group") + 1]].value_counts()
    assert len(sizes) == 2 and sizes.min() > len(pt.indicators) + 1


def test_phases_keeps_both_writing_stages_and_adds_up_a_repeated_label(monkeypatch):
    """``fit`` prints "writing OUT/ (...)" and then "writing the report (...)": both are
    stages of their own (they once shared a label and the run's seconds were lost), and a
    stage label met twice sums its seconds."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_phases", ROOT / "benchmarks/phases.py")
    phases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(phases)
    out = ROOT / "tmp-phases" / "run"
    stdout = "\n".join(
        [
            "[   0.5 s] reading the data (data/x.csv)",
            "[   2.0 s] sampling: 4 chains x 1000 draws after 1000 tuning steps",
            "[   9.0 s] summarising the posterior: effects, estimates, hypotheses, diagnostics",
            "[  10.5 s] summarising the posterior: again",
            f"[  11.0 s] writing {out}/ (posterior.nc, estimates.csv)",
            "[  11.8 s] writing the report (report.html, report.md, figures)",
            "table lines between stage lines are not stages",
            "[  15.0 s] finished",
        ]
    )
    seconds, last = phases.stage_seconds(stdout, out)
    assert last == 15.0
    assert seconds == pytest.approx(
        {
            "reading the data (data/x.csv)": 1.5,
            "sampling": 7.0,
            "summarising the posterior": 2.0,
            "writing OUT/ (posterior.nc, estimates.csv)": 0.8,
            "writing the report (report.html, report.md, figures)": 3.2,
        }
    )
