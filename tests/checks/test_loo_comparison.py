"""LOO model comparison across runs; refusal of runs fitted to different data."""

import pandas as pd
import pytest
from fakes import laplace_draws, truth, write_run

from bayes_sor.checks.loo_comparison import check_same_data, compare
from bayes_sor.cli.main import main
from bayes_sor.errors import DataError
from bayes_sor.model.simulate import simulate
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.partable import build_partable

MEASURES = """
X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
"""
TRUE = MEASURES + "M ~ a*X\nY ~ b*M + X\n"
NO_B = MEASURES + "M ~ a*X\nY ~ X\n"
VALUES = {"M~X": 0.6, "Y~M": 0.6, "Y~X": 0.1}


def mediation_data(seed: int, n: int = 300) -> pd.DataFrame:
    pt = build_partable(TRUE)
    return simulate(pt, truth(pt, VALUES), n, seed)


def fake(tmp_path, model: str, data: pd.DataFrame, name: str):
    pt = build_partable(model)
    return write_run(tmp_path / name, pt, laplace_draws(pt, data, n_draws=300), data)


def test_loo_prefers_the_true_model_over_one_without_a_strong_path(tmp_path):
    data = mediation_data(1)
    runs = [fake(tmp_path, TRUE, data, "true"), fake(tmp_path, NO_B, data, "no_b")]
    out = tmp_path / "cmp"
    assert main(["compare-models", *map(str, runs), "--out", str(out)]) == 0
    table = pd.read_csv(out / "model_comparison.csv")
    assert list(table.model) == ["true", "no_b"]
    assert table.elpd_diff.iloc[1] < -4 and -table.elpd_diff.iloc[1] > 2 * table.dse.iloc[1]
    assert table.weight.sum() == pytest.approx(1.0)
    assert table.weight.iloc[0] > 0.9
    text = (out / "model_comparison.md").read_text()
    assert "true predicts clearly better" in text


def test_runs_of_different_data_are_refused(tmp_path, capsys):
    a = fake(tmp_path, TRUE, mediation_data(1), "a")
    b = fake(tmp_path, TRUE, mediation_data(2), "b")
    assert main(["compare-models", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "different data" in err and "Traceback" not in err


def test_same_file_but_different_items_is_refused(tmp_path):
    data = mediation_data(3)
    a = load_run(fake(tmp_path, TRUE, data, "a"))
    b = load_run(fake(tmp_path, "X =~ x1 + x2 + x3\nM =~ m1 + m2 + m3\nM ~ X\n", data, "b"))
    b.tree.attrs["bayes_sor_data_sha256"] = a.tree.attrs["bayes_sor_data_sha256"]
    with pytest.raises(DataError, match=r"items \['y1', 'y2', 'y3'\] are in one model only"):
        check_same_data({"a": a, "b": b})


def test_one_run_is_not_a_comparison(tmp_path):
    from bayes_sor.errors import BayesSORError

    with pytest.raises(BayesSORError, match="at least two"):
        compare([tmp_path])


@pytest.mark.slow
def test_sampled_loo_prefers_the_true_model(tmp_path):
    from bayes_sor.report.run_report import write_run as write_fit
    from bayes_sor.runs.fit import fit
    from bayes_sor.sampling.samplers import SamplerSettings

    data = mediation_data(4)
    settings = SamplerSettings(chains=2, draws=500, tune=500, seed=3, progressbar=False)
    runs = []
    for name, model in (("true", TRUE), ("no_b", NO_B)):
        runs.append(write_fit(fit(model, data, scale="none", settings=settings), tmp_path / name))
    table = compare(runs)
    assert list(table.model) == ["true", "no_b"]
    assert table.elpd_diff.iloc[1] < -4 and -table.elpd_diff.iloc[1] > 2 * table.dse.iloc[1]
