"""The README's commands, read from README.md itself (never a copy of them), as a new user runs
them: the install-and-fit command on a fresh clone and again, then every command of the
"Other commands" table on the bundled data, in the order a user would run them.

The fast tests check the install command's parts and drive the fit command's own arguments up to
sampling; the slow ones run the commands for real in a fresh copy of the repository.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from paths import ROOT

from bayes_sor.cli.main import main

README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = "reports/impulse_buying"
PYTHON_CHECK = "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)"


def first_command() -> list[str]:
    """The README's first ```bash block: the install-and-fit command, split at its ``&&``."""
    block = re.search(r"```bash\n(.*?)```", README, re.DOTALL)
    assert block is not None, "README.md has no ```bash block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the first command is one line a user pastes: {lines}"
    return [part.strip() for part in lines[0].split("&&")]


def fit_argv() -> list[str]:
    """The bayes_sor arguments of the README's fit command (after ``python -m bayes_sor``)."""
    fit = first_command()[-1]
    words = shlex.split(fit)
    assert words[:4] == ["python", "-m", "bayes_sor", "fit"], fit
    return words[3:]


def readme_command(name: str) -> list[str]:
    """The README's ``python -m bayes_sor NAME ...`` text as words, optional parts
    (``[--run RUN]``) kept: the "Other commands" table's, else the first in the README."""
    table = README[README.index("## Other commands") :]
    table = table[: table.index("\n\n", table.index("| command |"))]
    pattern = rf"`python -m bayes_sor {re.escape(name)} ([^`]*)`"
    found = re.search(pattern, table) or re.search(pattern, README)
    assert found is not None, f"README.md shows no 'python -m bayes_sor {name}' command"
    return [name, *shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", found.group(1)))]


def test_ci_runs_exactly_the_readmes_test_command():
    """The second ```bash block is the test command; .ci/run ends by running that very line."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    command = blocks[1].strip()
    assert "\n" not in command and command.startswith("python -m pytest"), command
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci[-1] == command


# ---- fast: the text of the first command ----------------------------------------------------
def test_the_install_part_makes_a_python_312_venv_and_installs_the_test_extra():
    venv, activate, install, fit = first_command()
    python = re.fullmatch(r"(\S+) -m venv \.venv", venv)
    assert python is not None and python.group(1) in ("python3.12", "python3"), venv
    assert activate == ". .venv/bin/activate"
    assert install == 'pip install -e ".[test]"'
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "test" in project["optional-dependencies"]
    assert project["requires-python"] == ">=3.12"
    assert fit.startswith("python -m bayes_sor fit ")


def test_the_readme_says_what_to_do_when_python312_is_a_refusing_shim():
    assert "python3 --version" in README
    assert "$(pyenv root)/versions/3.12" in README


def test_the_fit_command_passes_every_check_on_a_fresh_clones_example_folder(tmp_path, monkeypatch):
    """The README's fit arguments in a fresh clone's layout (the committed example run has no
    posterior.nc) get through the destination and input checks to sampling, twice."""
    tracked = subprocess.run(
        ["git", "ls-files", EXAMPLE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    for folder in ("models", "data"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)

    class Sampled(Exception):
        pass

    def stop(built, settings, stage, **sampling):
        raise Sampled

    monkeypatch.setattr(importlib.import_module("bayes_sor.runs.fit"), "sample", stop)
    for _ in range(2):
        with pytest.raises(Sampled):
            main(fit_argv())
    assert sorted(p.name for p in (tmp_path / EXAMPLE).iterdir()) == sorted(
        Path(name).name for name in tracked
    )


def _find_python_function() -> str:
    """``.ci/run``'s ``find_python`` function, as bash source."""
    script = (ROOT / ".ci" / "run").read_text()
    function = re.search(r"^find_python\(\) \{\n.*?^\}\n", script, re.DOTALL | re.MULTILINE)
    assert function is not None
    return function.group(0)


def test_ci_finds_python_through_pyenv_when_the_shims_refuse(tmp_path):
    """``python3.12`` is a pyenv shim that refuses (as on a machine whose pyenv has no global
    3.12), no other Python is on PATH: ``.ci/run`` asks pyenv where its versions are."""
    bin_dir, root = tmp_path / "bin", tmp_path / "pyenv-root"
    bin_dir.mkdir()
    shim = "#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n"
    pyenv = (
        f'#!/bin/sh\ncase "$1" in\n  root) echo {root} ;;\n'
        "  versions) printf '3.11.7\\n3.12.9\\n' ;;\n  *) exit 1 ;;\nesac\n"
    )
    for name, text in (("python3.12", shim), ("python3", shim), ("pyenv", pyenv)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "sort").symlink_to(shutil.which("sort"))
    old = root / "versions" / "3.11.7" / "bin" / "python"
    new = root / "versions" / "3.12.9" / "bin" / "python"
    for python, ok in ((old, False), (new, True)):
        python.parent.mkdir(parents=True)
        python.write_text(f"#!/bin/sh\nexit {0 if ok else 1}\n")
        python.chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", "-c", _find_python_function() + "find_python"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(bin_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(new)


# ---- what ships beside the code: licences, changelog, where a model's data come from --------
def test_the_licence_texts_are_shipped():
    """pyproject says MIT: the text is in LICENSE; the third-party data name their source and
    licence (with its text) in data/NOTICE, which data/README.md points to."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n") and "Permission is hereby granted" in licence
    notice = (ROOT / "data" / "NOTICE").read_text()
    for name in ("holzinger_swineford.csv", "political_democracy.csv"):
        assert (ROOT / "data" / name).is_file() and name in notice
    assert "semopy" in notice and notice.count("Permission is hereby granted") == 1
    assert "NOTICE" in (ROOT / "data" / "README.md").read_text()


def test_the_changelog_has_a_section_for_this_version_and_the_unreleased_changes():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    headings = re.findall(r"^## (\S+)", changelog, re.MULTILINE)
    assert headings[:2] == ["Unreleased", version], headings


def test_a_model_without_bundled_data_says_where_they_are_and_how_to_fit_it(reference):
    """models/hayes_teams.lav: its data are not in data/; the file names their origin and the
    exact command, whose data file holds every variable of the model."""
    text = (ROOT / "models" / "hayes_teams.lav").read_text()
    assert "PROCESS" in text and "afhayes.com" in text
    command = re.search(r"^#\s+(python -m bayes_sor fit .*)$", text, re.MULTILINE)
    assert command is not None, "the model file names no fit command"
    words = shlex.split(command.group(1))
    assert words[4] == "models/hayes_teams.lav"
    data = ROOT / words[words.index("--data") + 1]
    assert data.resolve().is_relative_to(reference.resolve()) and data.is_file()
    header = data.read_text().splitlines()[0].replace('"', "").split(",")
    assert set(header) >= {"dysfunc", "negtone", "negexp", "perform"}


# ---- slow: the commands for real, in a fresh copy of the repository ---------------------------
def _fresh_copy(folder: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, nothing git ignores)."""
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in names:
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def _bayes_sor(clone: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """``python -m bayes_sor ARGV`` in the clone, importing the clone's package."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    return subprocess.run(
        [sys.executable, "-m", "bayes_sor", *argv],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """A fresh copy of the repository in which the README's exact fit command ran twice."""
    folder = _fresh_copy(tmp_path_factory.mktemp("clone") / "bayes_sor")
    return folder, [_bayes_sor(folder, fit_argv()) for _ in range(2)]


@pytest.mark.slow
def test_the_readme_fit_command_succeeds_on_a_fresh_clone_and_again(clone):
    folder, runs = clone
    for result in runs:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = folder / EXAMPLE
    assert (run / "posterior.nc").is_file() and (run / "report.html").is_file()
    assert "## Regenerate" in (run / "README.md").read_text()  # the example's README is kept


@pytest.mark.slow
def test_every_command_of_the_readme_runs_on_the_bundled_data_in_a_users_order(clone):
    """fit (above), ppc, reliability, sensitivity, compare, compare-models, report, simulate,
    sbc: the README's own command texts with its placeholders filled in; sizes the README
    shows (sbc's --sims) made small, yet large enough for a verdict, and the ML bootstraps of
    compare shortened. sbc with the model's SBC-ready priors must end calibrated (exit 0)."""
    folder, runs = clone
    assert runs[0].returncode == 0, runs[0].stderr[-3000:]
    run, wide = EXAMPLE, "reports/impulse_buying_wide"
    # the second run of compare-models: the refit the README suggests, fewer draws
    refit = [*fit_argv(), "--prior-scale", "2", "--draws", "500", "--allow-warnings", "--no-report"]
    refit[refit.index("--out") + 1] = wide
    fill = {
        "RUN": run,
        "MODEL": "models/impulse_buying.lav",
        "CSV": "data/impulse_buying.csv",
        "FILE": "models/impulse_buying.published.yaml",
        "N": "100",
        "S": "1",
        "TRUTH.csv": "data/impulse_buying_truth.csv",
        "data.csv": "reports/simulated.csv",
        "PRIORS.yaml": "models/impulse_buying.sbc_priors.yaml",
    }
    steps = {
        "ppc": [],
        "reliability": [],
        "sensitivity": [],
        "compare": ["--boot", "50", "--process-boot", "50"],
        "compare-models": [],
        "report": [],
        "simulate": [],
        "sbc": [],
    }
    for name, extra in steps.items():
        if name == "compare-models":
            assert _bayes_sor(folder, refit).returncode == 0
        words = readme_command(name)
        argv = []
        for k, word in enumerate(words):
            if word == "...":
                continue
            if word == "RUN" and words[k - 1] == "RUN":
                argv.append(wide)
            elif word == "DIR":
                argv.append(f"reports/readme_{name}")
            elif words[k - 1] == "--sims":
                argv.append("20")  # the fewest simulations sbc gives a verdict for
            else:
                argv.append(fill.get(word, word))
        result = _bayes_sor(folder, [*argv, *extra])
        assert result.returncode == 0, (argv, result.stdout[-3000:], result.stderr[-3000:])
