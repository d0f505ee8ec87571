"""End-to-end CLI runs on a small model: outputs, exit codes 0/1/2, atomic replacement."""

import os
import pty
import re
import subprocess
import sys
import time

import arviz as az
import numpy as np
import pandas as pd
import pytest
from fakes import MEDIATION_PROJECT, mediation_project
from paths import ROOT

from bayes_sor.cli.main import main
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.partable import build_partable

MODEL = MEDIATION_PROJECT
FAST = ["--chains", "4", "--draws", "500", "--tune", "500", "--seed", "7", "--no-progress"]
#: 20 draws: too few for the convergence checks to pass
SHORT = ["--chains", "2", "--draws", "20", "--tune", "20", "--no-progress"]


def fit_argv(project, out, *options: str, model=None, data=None) -> list[str]:
    """``fit MODEL --data DATA --out OUT OPTIONS`` (the project's model and data by default)."""
    model = model or project / "model.lav"
    data = data or project / "data.csv"
    return ["fit", str(model), "--data", str(data), "--out", str(out), *options]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return mediation_project(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def run(project):
    out = project / "run"
    code = main(fit_argv(project, out, "--scale", "none", *FAST))
    return code, out


def test_fit_writes_every_output_in_the_documented_layout(run):
    code, out = run
    assert code == 0
    estimates = pd.read_csv(out / "estimates.csv")
    assert list(estimates.columns[:13]) == [
        "lhs",
        "op",
        "rhs",
        "label",
        "mean",
        "median",
        "sd",
        "ci.lower",
        "ci.upper",
        "r_hat",
        "ess_bulk",
        "ess_tail",
        "std.all",
    ]
    effects = pd.read_csv(out / "effects.csv", keep_default_na=False)
    indirect = effects[(effects.kind == "indirect") & (effects.effect == "X -> M -> Y")]
    defined = effects[(effects.kind == "defined") & (effects.effect == "ab")]
    assert float(indirect["mean"].iloc[0]) == pytest.approx(float(defined["mean"].iloc[0]))
    # Truth 0.6 * 0.5 = 0.3 (the data come from the fitted model, std.lv). At N = 300 a correct
    # fit's posterior SD is ~0.066 (measured), so it lands within 0.15 (2.3 SDs) with ~98 %
    # probability (this seed: 0.33) and within 3 of its own SDs; an effect scaled by 1.5 (0.49)
    # fails the first bound, one scaled by 0.5 (0.165, SD 0.033) the second.
    mean, sd = float(indirect["mean"].iloc[0]), float(indirect["sd"].iloc[0])
    assert abs(mean - 0.3) < min(0.15, 3 * sd), (mean, sd)
    post = az.from_netcdf(out / "posterior.nc")
    assert {"posterior", "sample_stats", "observed_data"} <= set(post.children)
    assert post.attrs["bayes_sor_seed"] == "7"
    assert "M ~ a*X" in post.attrs["bayes_sor_model_text"]
    report = (out / "report.md").read_text()
    assert "H1" in report and "Diagnostics" in report


def test_prior_scale_refits_with_every_default_prior_widened(run, project):
    """``--prior-scale 2``: priors doubled in the table and the run folder, and the indirect
    effect of a well-identified model barely moves (the direct sensitivity check)."""
    _, default = run
    out = project / "wide"
    options = ["--scale", "none", "--prior-scale", "2", "--no-report", *FAST]
    assert main(fit_argv(project, out, *options)) == 0
    estimates = pd.read_csv(out / "estimates.csv", keep_default_na=False)
    regression = estimates[(estimates.op == "~") & (estimates.rhs == "X")]
    assert set(regression.prior) == {"normal(0,20)"}
    assert load_run(out).partable.table.prior.str.contains("normal\\(0,20\\)").any()
    assert az.from_netcdf(out / "posterior.nc").attrs["bayes_sor_prior_scale"] == "2.0"

    def indirect(folder):
        effects = pd.read_csv(folder / "effects.csv", keep_default_na=False)
        return effects.loc[effects.effect == "X -> M -> Y", ["mean", "sd"]].iloc[0]

    wide, base = indirect(out), indirect(default)
    assert abs(wide["mean"] - base["mean"]) < 0.5 * base["sd"]


def test_existing_run_is_refused_without_force_and_kept(run, project, capsys):
    _, out = run
    before = (out / "estimates.csv").read_bytes()
    code = main(fit_argv(project, out, *FAST))
    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "estimates.csv").read_bytes() == before


def test_failed_diagnostics_exit_1_unless_allowed(project, capsys):
    options = [*SHORT, "--scale", "none", "--no-report"]
    assert main(fit_argv(project, project / "short", *options)) == 1
    assert "ESS" in capsys.readouterr().err
    assert main(fit_argv(project, project / "short2", *options, "--allow-warnings")) == 0


def test_bad_input_exits_2_with_one_message_and_no_traceback(project):
    bad = project / "bad.csv"
    pd.DataFrame({"x1": ["agree", "3"], "x2": [1, 2]}).to_csv(bad, index=False)
    result = subprocess.run(
        [sys.executable, "-m", "bayes_sor", *fit_argv(project, project / "never", data=bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")
    assert not (project / "never").exists()


def test_run_exits_with_mains_code_after_the_exit_handlers_and_flushed_output():
    """``python -m bayes_sor`` skips the interpreter's teardown: main's exit code, everything
    printed reaches the pipes, and the exit handlers (PyTensor's housekeeping) still run."""
    script = (
        "import atexit; atexit.register(print, 'exit handlers ran'); "
        "from bayes_sor.cli.main import run; print('before', end=''); run(['simulate'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stdout == "beforeexit handlers ran\n"
    assert "required" in result.stderr and "Traceback" not in result.stderr


def test_syntax_error_names_line_and_column(project, capsys):
    broken = project / "broken.lav"
    broken.write_text("X =~ x1 + x2 + x3\nM =~ m1 + m2 + m3\nY ~ ~ M\n")
    code = main(fit_argv(project, project / "x", model=broken))
    assert code == 2
    assert "line 3" in capsys.readouterr().err


def test_simulate_writes_likert_answers(project):
    out = project / "sim.csv"
    truth = project / "truth.csv"
    code = main(
        [
            "simulate",
            str(project / "model.lav"),
            "--nobs",
            "50",
            "--seed",
            "2",
            "--out",
            str(out),
            "--truth-out",
            str(truth),
        ]
    )
    assert code == 0
    data = pd.read_csv(out)
    assert data.shape == (50, 9)
    assert data.isin(range(1, 8)).all().all()
    assert len(pd.read_csv(truth)) == len(build_partable(MODEL).parameters)


def test_same_seed_gives_the_same_posterior(run, project):
    _, out = run
    again = project / "again"
    code = main(fit_argv(project, again, "--scale", "none", "--no-report", *FAST))
    assert code == 0
    first = az.from_netcdf(out / "posterior.nc")["posterior"]["par"].values
    second = az.from_netcdf(again / "posterior.nc")["posterior"]["par"].values
    np.testing.assert_array_equal(first, second)


def test_centred_and_non_centred_latent_scores_give_the_same_posterior(project):
    """The conditional likelihood in both parameterisations: the same posterior (every free
    parameter's mean within 0.25 posterior SD), no raw latent variables in posterior.nc, and
    the run names the latents it centred."""
    fits = {}
    for choice in ("centred", "non-centred"):
        out = project / f"latent_{choice}"
        options = ["--scale", "none", "--likelihood", "conditional", "--latent-scores", choice]
        code = main(fit_argv(project, out, *options, "--allow-warnings", *FAST))
        assert code == 0
        post = az.from_netcdf(out / "posterior.nc")
        assert not {"latent_z", "latent_exogenous", "latent_eta_M", "latent_eta_Y"} & set(
            post["posterior"].data_vars
        )
        fits[choice] = (pd.read_csv(out / "estimates.csv"), post.attrs["bayes_sor_centred_latents"])
    (centred, named), (other, none) = fits["centred"], fits["non-centred"]
    assert named == '["X", "M", "Y"]' and none == "[]"
    free = centred.free > 0
    gap = (centred["mean"] - other["mean"]).abs()[free] / centred["sd"][free]
    assert gap.max() < 0.25, centred.assign(gap=gap).nlargest(3, "gap")
    assert centred.ess_bulk[free].min() > 200 and other.ess_bulk[free].min() > 200


# ---- what the console shows while and after a fit runs ----------------------------------------
STAGES = (
    r"reading the data \(.*data\.csv\)$",
    r"building the PyMC model$",
    r"compiling the marginal model for nutpie: (cached|not cached, compiling \(a model's "
    r"first run: up to a few minutes)",
    r"sampling: 2 chains x 20 draws after 20 tuning",
    r"summarising the posterior",
    r"writing .*console/ \(posterior\.nc",
    r"writing the report \(report\.html",
    r"finished$",
)


def test_fit_console_stages_verdicts_and_each_warning_once_through_a_pipe(project):
    """``python -m bayes_sor fit`` with stdout a pipe: a timed line per stage, in order and as
    they happen (flushed), a blank line before the effects table, the hypotheses' verdicts,
    each convergence warning once (no raw ``UserWarning`` with its source line), and the
    ``diagnostics:`` line also when a check fails (20 draws: ESS too low)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bayes_sor",
            *fit_argv(project, project / "console", "--scale", "none", *SHORT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    arrived = [(line.rstrip("\n"), time.perf_counter()) for line in process.stdout]
    stderr = process.stderr.read()
    assert process.wait(timeout=600) == 1, stderr
    lines = [line for line, _ in arrived]
    result = subprocess.CompletedProcess(process.args, 1, "\n".join(lines), stderr)
    building = next(t for line, t in arrived if line.endswith("building the PyMC model"))
    finished = next(t for line, t in arrived if line.endswith("] finished"))
    assert finished - building > 1, "stage lines must arrive as they happen, not at the exit"
    stamped = [re.match(r"\[ *(\d+\.\d) s\] (.*)", line) for line in lines]
    stamped = [m for m in stamped if m is not None]
    assert [
        next((k for k, s in enumerate(STAGES) if re.match(s, m.group(2))), None) for m in stamped
    ] == list(range(len(STAGES))), result.stdout
    seconds = [float(m.group(1)) for m in stamped]
    assert seconds == sorted(seconds)
    table = next(k for k, line in enumerate(lines) if line.split()[:2] == ["effect", "kind"])
    assert lines[table - 1] == "" and "finished" in lines[table - 2]
    verdicts = next(k for k, line in enumerate(lines) if line.startswith("hypotheses (ROPE"))
    assert re.match(r"\s*H1\s+indirect\(X -> M -> Y\) > 0\s+std.all .*support", lines[verdicts + 2])
    assert re.search(r"^diagnostics: \d+ check\(s\) failed .* exit 1", result.stdout, re.M)
    warned = [line for line in result.stderr.splitlines() if line.strip()]
    assert warned and all(line.startswith("WARNING: ") for line in warned), result.stderr
    assert len(warned) == len(set(warned)) and "UserWarning" not in result.stderr


def _tiny_fit(project, out) -> list[str]:
    """``fit`` of the project's model, 1 chain x 10 draws without a report: for what happens
    around sampling."""
    return fit_argv(
        project,
        out,
        *("--scale", "none", "--chains", "1", "--draws", "10", "--tune", "10", "--no-progress"),
        *("--no-report", "--allow-warnings", "--force"),
    )


def test_the_compiling_line_says_whether_the_compiled_model_is_cached(
    project, tmp_path, monkeypatch, capsys
):
    """A model graph not in the compiled-model cache is announced with the expected wait; the
    same model's next run says "cached"."""
    monkeypatch.setattr("bayes_sor.sampling.nutpie_cache.MODEL_CACHE", tmp_path / "models")
    args = _tiny_fit(project, tmp_path / "run")
    for said in (
        "nutpie: not cached, compiling (a model's first run: up to a few minutes",
        "compiling the marginal model for nutpie: cached\n",
    ):
        assert main(args) == 0
        assert said in capsys.readouterr().out


def test_the_line_after_the_progress_bar_starts_on_a_line_of_its_own(project, tmp_path):
    """On a terminal nutpie draws its progress bar and leaves the last line unterminated; the
    next stage line must not be glued to it."""
    main_fd, child_fd = pty.openpty()
    options = ["--scale", "none", "--chains", "2", "--draws", "50", "--tune", "50"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bayes_sor",
            *fit_argv(project, tmp_path / "tty", *options, "--no-report", "--allow-warnings"),
        ],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
    )
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    assert process.wait(timeout=600) == 0
    screen = b"".join(chunks).decode("utf-8", "replace").replace("\r", "")
    assert "Progress" in screen  # a progress bar was drawn
    assert re.search(r"\n\[ *\d+\.\d s\] summarising the posterior", screen), screen[-2000:]


# ---- what a command imports ---------------------------------------------------------------------
#: modules a command loads only when it draws or compares: the report's figures and diagram, the
#: ML stack (semopy) of ``compare``
DRAWING = ("matplotlib.figure", "matplotlib.pyplot", "arviz_plots", "bayes_sor.report.diagram")
ML_STACK = ("semopy", "bayes_sor.comparison.ml_sem")
#: ArviZ's statistics (arviz_stats imports scipy.stats: ~0.6 s)
STATISTICS = ("arviz_stats", "scipy.stats")


def _loaded(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True
    )
    return result.stdout.splitlines()[-1].split()[1:]


def test_building_the_command_line_imports_no_plotting_and_no_ml_stack():
    """Every command registers its parser at start-up: registering must not draw in matplotlib,
    ArviZ's plots or semopy (a second of every command, ``--help`` included), nor ArviZ's
    statistics and scipy.stats (0.6 s, which ``fit`` spends while its chains sample)."""
    code = "from bayes_sor.cli.main import _parser\n_parser()"
    assert _loaded(code, (*DRAWING, *ML_STACK, "arviz", *STATISTICS)) == []


def test_fit_without_report_imports_no_plotting_and_no_ml_stack(project, tmp_path):
    """``fit --no-report`` draws nothing: matplotlib, ArviZ's plots (which nutpie's
    ``import arviz`` would load), the path diagram, the comparison's ML fit and semopy stay
    unloaded; its summaries and diagnostics need neither ArviZ's statistics nor scipy.stats
    (:mod:`bayes_sor.posterior.chain_stats`)."""
    args = _tiny_fit(project, tmp_path / "run")
    code = f"from bayes_sor.cli.main import main\nassert main({args!r}) == 0"
    assert _loaded(code, ("matplotlib", "arviz", *DRAWING, *ML_STACK, *STATISTICS)) == []


def test_a_fits_second_run_loads_its_model_without_pymcs_graph_work(project, tmp_path):
    """The same command run again, in a new process, finds the record of its model's build:
    PyMC neither derives the log density nor compiles the initial-point function, and the
    posterior file is byte for byte the one of a run that went the long way."""

    def run(out, long_way: bool) -> str:
        code = (
            "import bayes_sor.sampling.nutpie_cache as cache\n"
            + (
                "import bayes_sor.sampling.samplers as samplers\n"
                "samplers.recorded_model = lambda *args, **kwargs: None\n"
                if long_way
                else ""
            )
            + "derived, of = [], cache._ModelGraph.of\n"
            "cache._ModelGraph.of = lambda *a: derived.append(1) or of(*a)\n"
            "from bayes_sor.cli.main import main\n"
            f"assert main({_tiny_fit(project, out)!r}) == 0\n"
            "print('graph work:', len(derived))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
        )
        return result.stdout.splitlines()[-1] if result.stdout else result.stderr[-2000:]

    assert run(tmp_path / "long", long_way=True) == "graph work: 1"  # and recorded
    assert run(tmp_path / "recorded", long_way=False) == "graph work: 0"
    posterior = "posterior.nc"
    assert (tmp_path / "recorded" / posterior).read_bytes() == (
        tmp_path / "long" / posterior
    ).read_bytes()


def test_a_fits_second_run_does_not_import_pymc(project, tmp_path):
    """A fit whose model build was recorded by an earlier run assembles its compiled model
    from the record before building anything: PyMC (its import and the model's graph, ~0.3 s
    of a 4 s command), the model-building code and PyMC's own sampler stay unloaded; the first
    run, which builds the model, does import them."""
    args = _tiny_fit(project, tmp_path / "run")
    code = f"from bayes_sor.cli.main import main\nassert main({args!r}) == 0"
    building = ("pymc", "bayes_sor.model.build", "bayes_sor.model.latent")
    _loaded(code, building)  # records the build, unless an earlier run has
    assert _loaded(code, building) == []


#: Study A's moderated path on its own (the bundled data, a gender column)
STUDY_A_MODERATION = """CT =~ ct1 + ct2 + ct3 + ct4 + ct5
IT =~ it1 + it2 + it3 + it4
IB =~ ib1 + ib2 + ib3 + ib4
PI =~ pi1 + pi2 + pi3 + pi4 + pi5
CT ~ PI
IB ~ CT + IT + CT:IT
"""


@pytest.mark.slow
def test_a_grouped_latent_interaction_fits_end_to_end_on_study_a(tmp_path):
    """``fit --group gender`` of a latent interaction: the conditional likelihood per group,
    every effect per group and its difference, the moderator percentiles each group's own."""
    model = tmp_path / "moderation.lav"
    model.write_text(STUDY_A_MODERATION)
    out = tmp_path / "run"
    argv = fit_argv(
        tmp_path,
        out,
        "--group",
        "gender",
        "--group-equal",
        "loadings,intercepts",
        "--allow-warnings",
        "--no-report",
        *SHORT,
        model=model,
        data=ROOT / "data" / "impulse_buying.csv",
    )
    assert main(argv) == 0
    effects = pd.read_csv(out / "effects.csv").fillna("")
    conditional = effects[
        (effects.kind == "conditional_indirect") & (effects.moderator_value == "IT=p84")
    ]
    assert set(conditional.group) == {"male", "female", "female - male"}
    post = az.from_netcdf(out / "posterior.nc")["posterior"]
    quantiles = post["moderator_quantiles"]
    assert quantiles.dims[2:] == ("moderator_group", "moderator", "quantile")
    assert not np.allclose(
        quantiles.sel(moderator_group="male"), quantiles.sel(moderator_group="female")
    )
    estimates = pd.read_csv(out / "estimates.csv")
    assert set(estimates.group) == {"male", "female"}
    later = estimates[(estimates.group == "female") & (estimates.op == "~1")]
    assert later[later.lhs == "IT"].free.iloc[0] > 0  # its latent mean is free
