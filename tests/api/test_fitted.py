"""The Python API's fitted model (bayes_sor/api/fitted.py): the fit in memory shows what its
saved run folder shows, a folder written by the API is the command line's and back, checks
and plots return results and figures and write only when asked."""

import warnings

import pandas as pd
import pytest
from fakes import mediation_project
from matplotlib.figure import Figure

import bayes_sor as bs
from bayes_sor.checks.result import CheckResult
from bayes_sor.cli.main import main
from bayes_sor.runs.rundir import read_table

OPTIONS = {"chains": 4, "draws": 500, "tune": 500, "seed": 7, "scale": "none"}
CLI_OPTIONS = ["--chains", "4", "--draws", "500", "--tune", "500", "--seed", "7"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return mediation_project(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def fitted(project):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.ConvergenceWarning)  # this fit converges
        return bs.fit(project / "model.lav", project / "data.csv", **OPTIONS)


@pytest.fixture(scope="module")
def saved(fitted, project):
    fitted.save(project / "api_run")
    return project / "api_run"


def test_an_unsaved_fit_shows_the_tables_its_run_folder_holds(fitted, saved):
    for name, table in (("estimates", fitted.estimates), ("effects", fitted.effects)):
        pd.testing.assert_frame_equal(table, read_table(saved / f"{name}.csv"))
    pd.testing.assert_frame_equal(fitted.hypotheses, pd.read_csv(saved / "hypotheses.csv"))
    assert fitted.path == saved and fitted.converged
    assert set(fitted.idata.children) >= {"posterior", "sample_stats", "observed_data"}


@pytest.fixture(scope="module")
def cli_run(project):
    cli = project / "cli_run"
    argv = ["fit", str(project / "model.lav"), "--data", str(project / "data.csv")]
    assert main([*argv, "--out", str(cli), "--scale", "none", *CLI_OPTIONS, "--no-progress"]) == 0
    return cli


def test_a_folder_the_api_saves_is_the_command_lines_and_back(fitted, saved, cli_run):
    """The same seed and options: the API's posterior.nc is the CLI's, byte for byte; each
    side reads the other's folder."""
    cli = cli_run
    assert (cli / "posterior.nc").read_bytes() == (saved / "posterior.nc").read_bytes()
    loaded = bs.load(cli)
    pd.testing.assert_frame_equal(loaded.estimates, fitted.estimates)
    pd.testing.assert_frame_equal(loaded.hypotheses, fitted.hypotheses)
    assert main(["report", str(saved)]) == 0
    assert "H1" in (saved / "report.md").read_text()


def test_the_summary_shows_the_verdict_the_hypotheses_and_the_main_effects(fitted):
    text = repr(fitted)
    assert "convergence: passed" in text and "H1" in text and "X -> M -> Y" in text
    assert "indirect" in text and "support" in text
    html = fitted._repr_html_()
    assert "passed" in html and "<table" in html and "X -&gt; M -&gt; Y" in html


def test_a_failed_convergence_check_is_data_and_one_warning(project):
    with pytest.warns(bs.ConvergenceWarning) as caught:
        short = bs.fit(
            project / "model.lav", project / "data.csv", scale="none", chains=2, draws=20, tune=20
        )
    assert len([w for w in caught if w.category is bs.ConvergenceWarning]) == 1
    assert not short.converged and short.diagnostics.problems
    assert "ESS" in str(caught[0].message)
    assert "convergence: FAILED" in repr(short)
    # what reads a run folder asks for one first
    with pytest.raises(bs.OutputError, match="save it first"):
        short.reliability(write=True)
    with pytest.raises(bs.OutputError, match="save it first"):
        bs.compare_models(short, short)


def test_bad_input_raises_the_exported_exceptions(project, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"x1": ["agree", "3"], "x2": [1, 2]}).to_csv(bad, index=False)
    with pytest.raises(bs.DataError, match="m1"):
        bs.fit(project / "model.lav", bad)
    with pytest.raises(bs.ModelSyntaxError, match="line 1"):
        bs.fit("Y ~ ~ M\nX =~ x1\n", project / "data.csv")
    assert issubclass(bs.DataError, bs.BayesSORError)


def test_checks_return_results_and_write_only_when_asked(fitted, saved):
    before = sorted(p.name for p in saved.iterdir())
    reliability = fitted.reliability()
    assert isinstance(reliability, CheckResult) and not reliability.console
    assert set(reliability.tables["reliability.csv"].measure) >= {"omega", "ave", "htmt"}
    ppc = fitted.ppc(draws=50)
    assert isinstance(ppc.figures["ppc_items.png"], Figure)
    assert "ppp" in set(ppc.tables["fit_measures.csv"].measure)
    assert sorted(p.name for p in saved.iterdir()) == before
    fitted.reliability(write=True)
    assert (saved / "reliability.csv").is_file()
    assert "reliability" in (saved / "report.md").read_text().lower()
    with pytest.raises(bs.BayesSORError, match="ci"):
        fitted.sensitivity(ci=1.5)


def test_plots_are_figures(fitted):
    for figure in (
        fitted.plot_diagram(),
        fitted.plot_effects(),
        fitted.plot_ranks(),
        fitted.plot_ranks(["M~X"]),
        fitted.plot_ppc("residuals", draws=50),
    ):
        assert isinstance(figure, Figure)
    assert fitted.plot_conditional() is None  # no moderator in this model
    with pytest.raises(bs.BayesSORError, match="moderates no path"):
        fitted.plot_conditional("W")
    with pytest.raises(bs.BayesSORError, match="kind"):
        fitted.plot_ppc("pairs")


def test_a_loaded_model_compares_with_another_run_and_is_not_saved_elsewhere(
    saved, cli_run, project
):
    loaded = bs.load(saved)
    table = bs.compare_models(loaded, bs.load(cli_run)).tables
    assert len(table["model_comparison.csv"]) == 2
    with pytest.raises(bs.OutputError, match="copy that folder"):
        loaded.save(project / "elsewhere")
