"""``python -m bayes_sor compare``: Bayesian vs ML vs composite OLS vs published, side by side.

The fast tests use a fake Bayesian run (ML bootstrap rows stored as posterior draws, with one
path flipped to construct a disagreement), so they need no sampling. ``ml_sem`` itself is
checked against lavaan in test_frequentist.py; here the question is whether the comparison
carries its numbers (and PROCESS's) through unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fakes import truth, write_run
from paths import ROOT
from reference_data import REFERENCE, require_reference
from sem_models import MODERATED

import bayes_sor as bs
from bayes_sor.checks.result import CheckResult, FigureSettings
from bayes_sor.cli.main import main
from bayes_sor.comparison.compare import (
    add_command,
    comparison,
    comparison_data,
    regression_controls,
)
from bayes_sor.comparison.compare_methods import (
    _alphas,
    comparable_effects,
    ml_estimates,
    published_estimates,
    study_estimates,
)
from bayes_sor.comparison.compare_report import MIN_PATH, _shown
from bayes_sor.comparison.composite import composite_scores, process_model14
from bayes_sor.comparison.ml_sem import ml_sem, ml_sem_fit
from bayes_sor.comparison.published import (
    KEY,
    baron_kenny_quantity,
    moderation_quantity,
    read_published,
)
from bayes_sor.comparison.table import MethodEstimates, comparison_table, read_comparison
from bayes_sor.errors import DataError
from bayes_sor.model.simulate import simulate
from bayes_sor.posterior.effects import effect_draws, effects_dataarray, effects_table
from bayes_sor.posterior.estimates import parameter_estimates
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

TRUTH = {"M~X": 0.5, "Y~M": 0.4, "Y~X": 0.3, "Y~W": 0.3, "Y~M:W": 0.2}
FLIPPED = "Y~X"
PUBLISHED = """
source: a made-up paper
scale: std
paths:
  M ~ X: 0.35
  Y ~ X: {estimate: 0.2, significant: true}
effects:
  - {effect: X -> Y, kind: total, estimate: 0.3}
baron_kenny:
  - {x: X, m: M, y: Y, a: 0.3, b: 0.3, c: 0.25, c': 0.15}
moderation:
  - {y: Y, terms: {M: 0.3, W: 0.2, "M:W": 0.1}}
"""


@pytest.fixture(scope="module")
def partable():
    return build_partable(MODERATED)


@pytest.fixture(scope="module")
def data(partable) -> pd.DataFrame:
    frame = simulate(partable, truth(partable, TRUTH), 300, seed=11)
    rng = np.random.default_rng(5)
    frame["group"] = rng.choice(["north", "south", "west"], size=len(frame))
    frame["age"] = rng.integers(18, 60, size=len(frame))
    return frame.round(3)


@pytest.fixture(scope="module")
def project(tmp_path_factory, partable, data) -> Path:
    """Data, model and published files, and a fake run whose ``Y ~ X`` has the wrong sign."""
    folder = tmp_path_factory.mktemp("compare")
    data.to_csv(folder / "data.csv", index=False)
    (folder / "model.lav").write_text(MODERATED)
    (folder / "published.yaml").write_text(PUBLISHED)
    fit = ml_sem_fit(partable, data, bootstrap=40, seed=1)
    par = fit.model_rows(fit.boot_rows).reshape(2, 20, -1)
    k = partable.names.index(FLIPPED)
    par[..., k] = -par[..., k] - 0.5
    summarised_run(folder / "run", partable, par, data)
    return folder


def summarised_run(path: Path, partable, par: np.ndarray, data: pd.DataFrame) -> None:
    """A fake run of draws ``par`` with its estimates.csv and effects.csv."""
    run = write_run(path, partable, par, data)
    rep = representation(partable)
    posterior = xr.Dataset(
        {"par": (("chain", "draw", "param"), par)}, coords={"param": partable.names}
    )
    parameter_estimates(partable, posterior).to_csv(run / "estimates.csv", index=False)
    effects = effects_table(effects_dataarray(effect_draws(partable, rep, par)))
    effects.to_csv(run / "effects.csv", index=False)


@pytest.fixture(scope="module")
def compared(project) -> pd.DataFrame:
    code = main(
        [
            "compare",
            str(project / "model.lav"),
            "--data",
            str(project / "data.csv"),
            "--run",
            str(project / "run"),
            "--published",
            str(project / "published.yaml"),
            "--out",
            str(project / "out"),
            "--boot",
            "20",
            "--process-boot",
            "300",
            "--workers",
            "1",
            "--seed",
            "3",
            "--controls",
            "group,age",
        ]
    )
    assert code == 0
    return read_comparison(project / "out" / "comparison.csv")


def _row(
    table: pd.DataFrame,
    quantity: str,
    kind: str = "path",
    scale: str = "std",
    moderator_value: str = "",
) -> pd.Series:
    rows = table[
        (table.quantity == quantity)
        & (table.kind == kind)
        & (table.scale == scale)
        & (table.moderator_value == moderator_value)
    ]
    assert len(rows) == 1, (quantity, kind, scale, moderator_value)
    return rows.iloc[0]


# ---- the command end to end --------------------------------------------------------------------
def test_compare_writes_every_row_and_column(compared, project):
    out = project / "out"
    assert {p.name for p in out.iterdir()} >= {"comparison.csv", "comparison.md", "comparison.png"}
    for method in ("bayes", "ml", "study", "published"):
        assert {f"{method}_est", f"{method}_lower", f"{method}_upper"} <= set(compared.columns)
    assert {"sign_disagree", "zero_disagree", "flag"} <= set(compared.columns)
    paths = ["M ~ X", "Y ~ M", "Y ~ X", "Y ~ W", "Y ~ M:W"]
    for quantity in paths:
        std = _row(compared, quantity)
        assert std[["bayes_est", "ml_est", "study_est"]].notna().all(), quantity
        raw = _row(compared, quantity, scale="raw")
        # composites have their own metric: no raw study values
        assert raw[["bayes_est", "ml_est"]].notna().all() and pd.isna(raw.study_est)
    effects = [
        ("X -> M -> Y", "indirect", ""),
        ("X -> Y", "total", ""),
        ("X -> M -> Y", "index_moderated_mediation", "W"),
        ("ab", "defined", ""),
    ]
    effects += [
        ("X -> M -> Y", "conditional_indirect", f"W={v}")
        for v in ("-1SD", "0SD", "+1SD", "p16", "p50", "p84")
    ]
    for quantity, kind, value in effects:
        row = _row(compared, quantity, kind, moderator_value=value)
        assert row[["bayes_est", "ml_est", "study_est"]].notna().all(), (quantity, kind)
        assert row.ml_lower <= row.ml_est <= row.ml_upper
    # the single indirect path's total indirect effect repeats it; direct effects are paths
    assert not compared.kind.isin(["direct", "total_indirect"]).any()
    for step in ("a", "b", "c", "c'", "a*b"):
        assert pd.notna(
            _row(compared, baron_kenny_quantity(step, "X", "M", "Y"), "baron_kenny").study_est
        )
    for term in ("M", "W", "M:W"):
        row = _row(compared, moderation_quantity("Y", term), "moderation")
        assert pd.notna(row.study_est) and pd.notna(row.published_est)


def test_constructed_disagreement_is_flagged(compared):
    flipped = _row(compared, "Y ~ X")
    assert flipped.bayes_est < 0 < min(flipped.ml_est, flipped.study_est)
    assert flipped.sign_disagree and "sign" in flipped.flag and "- Bayes" in flipped.flag
    assert _row(compared, "Y ~ X", scale="raw").sign_disagree
    agreed = _row(compared, "M ~ X")
    assert not agreed.sign_disagree and agreed.flag == ""


def test_report_section_is_appended_once(compared, project):
    report = (project / "run" / "report.md").read_text()
    assert report.count("<!-- bayes_sor:compare:begin -->") == 1
    assert "## Method comparison" in report and "../out/comparison.png" in report
    md = (project / "out" / "comparison.md").read_text()
    assert "Where the methods differ, and why" in md and "**Measurement error.**" in md
    # the explanation quotes this table's numbers, not canned ones
    flipped = _row(compared, "Y ~ X")
    assert f"{flipped.bayes_est:.3f}" in md


def test_the_comparison_is_one_check_result_computed_without_writing(project):
    """``compare`` computes one CheckResult (its files for --out, its section for the run's
    report) and writes nothing itself: the registration in checks/result.py writes it."""
    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    args = parser.parse_args(
        [
            "compare",
            str(project / "model.lav"),
            *("--data", str(project / "data.csv"), "--run", str(project / "run")),
            *("--out", str(project / "unwritten"), "--boot", "20", "--process-boot", "50"),
            *("--workers", "1", "--seed", "3"),
        ]
    )
    report = (project / "run" / "report.md").read_bytes()
    outcome = comparison(args)
    assert not (project / "unwritten").exists()
    assert (project / "run" / "report.md").read_bytes() == report
    (result,) = outcome.results
    assert isinstance(result, CheckResult) and result.name == "compare"
    assert [*result.tables, *result.documents, *result.figures] == [
        "comparison.csv",
        "comparison.md",
        "comparison.png",
    ]
    assert result.figure_settings["comparison.png"] == FigureSettings(dpi=130, tight=True)
    assert result.passed is False  # the flipped path is flagged
    assert outcome.folder == project / "unwritten" and outcome.run_dir == project / "run"
    assert outcome.exit_code == 0 and result.console.startswith(
        f"{len(result.tables['comparison.csv'])} rows"
    )


def test_the_apis_compare_gives_the_commands_table(compared, project, tmp_path):
    """``bs.compare`` on the loaded run: the table ``compare --run`` wrote, files only with
    ``out``."""
    result = bs.compare(
        bs.load(project / "run"),
        project / "data.csv",
        published=project / "published.yaml",
        controls=["group", "age"],
        boot=20,
        process_boot=300,
        workers=1,
        seed=3,
    )
    csv = result.tables["comparison.csv"].to_csv(index=False)
    assert csv == (project / "out" / "comparison.csv").read_text()
    # the title names the model: the CLI's model file, the loaded run's folder
    document = result.documents["comparison.md"]
    written = (project / "out" / "comparison.md").read_text()
    assert document.startswith("# Method comparison: run\n")
    assert document.split("\n", 1)[1] == written.split("\n", 1)[1]
    with pytest.raises(bs.BayesSORError, match="--boot"):
        bs.compare(bs.load(project / "run"), project / "data.csv", boot=1)


# ---- each method against its source ------------------------------------------------------------
def test_ml_rows_are_ml_sem_estimates():
    pt = build_partable((ROOT / "models" / "political_democracy.lav").read_text(), "marker")
    data = pd.read_csv(ROOT / "data" / "political_democracy.csv")
    rows = ml_estimates(pt, data, boot=4, seed=1, workers=1, level=0.95).table.set_index(KEY)
    table = ml_sem(pt, data)
    for r in table[table.op.isin(["~", "indirect", "total", ":="])].to_dict("records"):
        quantity, kind = (
            (f"{r['lhs']} ~ {r['rhs']}", "path")
            if r["op"] == "~"
            else (r["lhs"], {":=": "defined"}.get(r["op"], r["op"]))
        )
        assert rows.loc[(quantity, kind, "", "raw"), "est"] == pytest.approx(r["est"], abs=1e-9)
        assert rows.loc[(quantity, kind, "", "std"), "est"] == pytest.approx(r["std.all"], abs=1e-9)


def test_ml_interaction_keeps_ml_sem_standardised_value(partable, data):
    rows = ml_estimates(partable, data, boot=4, seed=1, workers=1, level=0.95).table
    table = ml_sem(partable, data).set_index(["lhs", "op", "rhs"])
    ours = rows.set_index(KEY).loc[("Y ~ M:W", "path", "", "std"), "est"]
    # product latent (ml_sem) vs latent product (here) differ only in sd(Y)'s normal theory
    assert ours == pytest.approx(table.loc[("Y", "~", "M:W"), "std.all"], abs=2e-3)


def test_study_effects_are_process_model14(partable, data):
    controls = regression_controls(data, ["group", "age"])
    study = study_estimates(partable, data, controls, boot=400, seed=9, level=0.95)
    rows = study.table.set_index(KEY)
    scores = composite_scores(partable, data)
    centred = (scores - scores.mean()).join(controls)
    sd = scores.std()
    ref = process_model14(
        centred,
        "X",
        "M",
        "W",
        "Y",
        controls=list(controls.columns),
        boot=400,
        seed=9,
        w_values=[-sd.W, 0.0, sd.W],
    ).set_index("effect")
    names = [n for n in ref.index if n.startswith("cond_ind")]
    for label, name in zip(("-1SD", "0SD", "+1SD"), names, strict=True):
        ours = rows.loc[("X -> M -> Y", "conditional_indirect", f"W={label}", "std")]
        for column, theirs in (("est", "estimate"), ("lower", "ci_lower"), ("upper", "ci_upper")):
            assert ours[column] * sd.Y / sd.X == pytest.approx(ref.loc[name, theirs], abs=1e-10)
    imm = rows.loc[("X -> M -> Y", "index_moderated_mediation", "W", "std")]
    assert imm.est * sd.Y / (sd.X * sd.W) == pytest.approx(
        ref.loc["index_modmed", "estimate"], abs=1e-10
    )
    assert study.info["n"] == len(data)
    assert study.info["alphas"] == pytest.approx(textbook_alphas(partable, data), abs=1e-12)


def textbook_alphas(partable, data: pd.DataFrame) -> dict[str, float]:
    """k/(k-1) (1 - sum of the item variances / variance of the item sum), per construct."""
    t = partable.table
    out = {}
    for latent in partable.latents:
        items = data[list(t.rhs[(t.op == "=~") & (t.lhs == latent)])]
        k = items.shape[1]
        out[latent] = k / (k - 1) * (1 - items.var().sum() / items.sum(axis=1).var())
    return out


def test_alpha_of_parallel_items_has_its_closed_form():
    # parallel items y_j = eta + e_j, var(eta) = 1, var(e_j) = s2: item correlation
    # rho = 1 / (1 + s2) and alpha = k rho / (1 + (k - 1) rho) (Spearman-Brown); an alpha
    # computed from the n x k answers instead of their covariance matrix is 1.00
    rng = np.random.default_rng(25)
    n, columns, expected = 20_000, {}, {}
    for latent, k, s2 in (("F", 4, 1.0), ("G", 3, 0.5)):
        eta = rng.normal(size=(n, 1))
        answers = eta + rng.normal(scale=np.sqrt(s2), size=(n, k))
        columns.update({f"{latent.lower()}{j + 1}": answers[:, j] for j in range(k)})
        rho = 1 / (1 + s2)
        expected[latent] = k * rho / (1 + (k - 1) * rho)
    data = pd.DataFrame(columns)
    partable = build_partable("F =~ f1 + f2 + f3 + f4\nG =~ g1 + g2 + g3\nG ~ F")
    alphas = _alphas(partable, data)
    assert expected == {"F": 0.8, "G": pytest.approx(6 / 7)}
    assert alphas == pytest.approx(expected, abs=0.01)
    assert alphas == pytest.approx(textbook_alphas(partable, data), abs=1e-12)


def test_attenuation_factor_uses_the_composites_alphas(compared, project, partable, data):
    alphas = textbook_alphas(partable, data)
    paths = compared[
        (compared.kind == "path")
        & (compared.scale == "std")
        & ~compared.quantity.str.contains(":")
        & (compared.bayes_est.abs() >= MIN_PATH)
    ]
    factors = [np.sqrt(alphas[x] * alphas[y]) for y, x in (q.split(" ~ ") for q in paths.quantity)]
    text = (project / "out" / "comparison.md").read_text()
    assert f"Cronbach's alpha {min(alphas.values()):.2f}-{max(alphas.values()):.2f}" in text
    assert f"sqrt(alpha_X alpha_Y) = {min(factors):.2f}-{max(factors):.2f}" in text
    assert len(factors) >= 2 and max(factors) < 0.95


def test_controls_are_dummy_coded_as_a_fit_codes_them(data):
    controls = regression_controls(data, ["group", "age"])
    assert list(controls.columns) == ["group[south]", "group[west]", "age"]
    named = regression_controls(data, ["group"], reference={"group": "west", "other": 1})
    assert list(named.columns) == ["group[north]", "group[south]"]
    np.testing.assert_array_equal(named["group[north]"], (data.group == "north").astype(float))
    with pytest.raises(DataError, match="income"):
        regression_controls(data, ["income"])


#: a model whose structural part has a text control (dummy-coded by the fit)
CONTROLLED = """---
reference: {sex: male}
---
X =~ x1 + x2 + x3
Y =~ y1 + y2 + y3
Y ~ X + sex + age
"""


def test_a_model_with_a_text_control_is_compared_on_its_dummies(tmp_path):
    numeric = build_partable(CONTROLLED.replace("sex", "female"))
    values = {"Y~X": 0.4, "Y~female": 0.5, "Y~age": 0.2}
    data = simulate(numeric, truth(numeric, values), 400, seed=4).round(3)
    data.insert(0, "sex", np.where(data.pop("female") > 0, "female", "male"))
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "model.lav").write_text(CONTROLLED)
    coded = comparison_data(build_partable(CONTROLLED), tmp_path / "data.csv", []).partable
    assert "Y~sex[female]" in coded.names
    frame = data.assign(**{"sex[female]": (data.sex == "female").astype(float)})
    fit = ml_sem_fit(coded, frame, bootstrap=20, seed=1)
    summarised_run(tmp_path / "run", coded, fit.model_rows(fit.boot_rows).reshape(2, 10, -1), frame)
    (tmp_path / "run" / "partable.csv").write_text(coded.table.to_csv(index=False))
    argv = ["compare", str(tmp_path / "model.lav"), "--data", str(tmp_path / "data.csv")]
    argv += ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--boot", "20"]
    assert main([*argv, "--process-boot", "50", "--workers", "1"]) == 0
    table = read_comparison(tmp_path / "out" / "comparison.csv").set_index(KEY)
    raw, std = (table.loc[("Y ~ sex[female]", "path", "", scale)] for scale in ("raw", "std"))
    # the ML and composite fits see the dummy (1 = female), not the text column
    ml = fit.table.set_index(["lhs", "op", "rhs"]).loc[("Y", "~", "sex[female]"), "est"]
    assert raw["ml_est"] == pytest.approx(ml, abs=1e-6)
    assert std["study_est"] == pytest.approx(std["ml_est"], abs=0.05)


# ---- published values --------------------------------------------------------------------------
def study_a_keys() -> set[tuple[str, str, str]]:
    """Every row the comparison makes for the bundled Study A model."""
    pt = build_partable((ROOT / "models" / "impulse_buying.lav").read_text())
    rep = representation(pt)
    params = pt.parameters.reset_index(drop=True)
    keys = {(f"{r.lhs} ~ {r.rhs}", "path", "") for r in params[params.op == "~"].itertuples()}
    effects = comparable_effects(effect_draws(pt, rep, truth(pt)[None]))
    keys |= {(e.effect, e.kind, e.moderator_value) for e in effects}
    for e in effects:
        if e.kind == "indirect":
            x, m, y = e.effect.split(" -> ")
            keys |= {
                (baron_kenny_quantity(s, x, m, y), "baron_kenny", "")
                for s in ("a", "b", "c", "c'", "a*b")
            }
    keys |= {(moderation_quantity("IB", t), "moderation", "") for t in ("CT", "IT", "CT:IT")}
    return keys


def test_study_a_published_values_map_onto_model_rows():
    published = read_published(ROOT / "models" / "impulse_buying.published.yaml")
    table = published.table
    keys = set(zip(table.quantity, table.kind, table.moderator_value, strict=True))
    assert keys <= study_a_keys(), keys - study_a_keys()
    assert (table.scale == "std").all()
    values = table.set_index(["quantity", "kind"]).estimate
    assert values[("CT ~ SI", "path")] == 0.2552 and values[("IB ~ CT:IT", "path")] == 0.024
    assert values[("IB ~ CT", "path")] == 0.235 and values[("IB ~ IT", "moderation")] == 0.38
    typo = table[(table.quantity == "SI -> IB") & (table.kind == "total")].iloc[0]
    assert typo.estimate == 0.009 and "typo" in typo.note
    assert len(table[table.kind == "baron_kenny"]) == 16


def test_published_csv_layouts(tmp_path):
    lavaan = tmp_path / "lavaan.csv"
    pd.DataFrame(
        {
            "lhs": ["F", "F", "G", "G", "G"],
            "op": ["=~", "=~", "=~", "=~", "~"],
            "rhs": ["a", "b", "c", "d", "F"],
            "est": [1, 0.8, 1, 0.9, 0.4],
            "se": [0, 0.1, 0, 0.1, 0.1],
            "pvalue": [np.nan, 0, np.nan, 0, 0.2],
            "std.all": [0.7, 0.6, 0.7, 0.6, 0.35],
        }
    ).to_csv(lavaan, index=False)
    published = read_published(lavaan)
    assert published.identification == "marker"
    rows = published.table.set_index("scale")
    assert rows.loc["raw", "estimate"] == 0.4 and rows.loc["std", "estimate"] == 0.35
    assert rows.loc["raw", "significant"] in (False,) and rows.loc["std", "estimate"] < 0.4
    long = tmp_path / "long.csv"
    pd.DataFrame(
        {"quantity": ["G ~ F"], "kind": ["path"], "estimate": [0.3], "significant": ["yes"]}
    ).to_csv(long, index=False)
    row = read_published(long).table.iloc[0]
    assert row.scale == "std" and row.significant in (True,) and np.isnan(row.lower)


def test_flags_use_intervals_or_the_published_verdict():
    def method(name, est, lower, upper, significant=None):
        frame = pd.DataFrame(
            [
                {
                    "quantity": "Y ~ X",
                    "kind": "path",
                    "moderator_value": "",
                    "scale": "std",
                    "est": est,
                    "se": np.nan,
                    "lower": lower,
                    "upper": upper,
                    "significant": significant,
                    "note": "",
                }
            ]
        )
        return MethodEstimates(name, frame, "")

    table = comparison_table(
        [
            method("bayes", 0.2, 0.1, 0.3),
            method("ml", 0.1, -0.1, 0.3),
            method("published", 0.05, np.nan, np.nan, True),
        ]
    )
    row = table.iloc[0]
    assert not row.sign_disagree and row.zero_disagree
    assert row.flag == "zero excluded by Bayes, published, not by ML"
    table = comparison_table(
        [method("bayes", -0.2, -0.3, -0.1), method("published", 0.05, np.nan, np.nan, None)]
    )
    assert table.iloc[0].sign_disagree and not table.iloc[0].zero_disagree


# ---- the Hanoi reanalysis ------------------------------------------------------------------------
HANOI_DATA = REFERENCE / "hanoi" / "impulse_social_commerce_hanoi.csv"
HANOI_PUBLISHED = REFERENCE / "hanoi" / "ref_impulse_hanoi_sem_lavaan_ml.csv"


def test_hanoi_command_errs_cleanly_without_the_shared_folder(tmp_path, capsys):
    code = main(
        [
            "compare",
            str(ROOT / "models" / "hanoi_sem.lav"),
            "--data",
            str(tmp_path / "shared" / "reference" / "hanoi" / HANOI_DATA.name),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert HANOI_DATA.name in err and "Traceback" not in err
    assert not (tmp_path / "out" / "bayes").exists()


def test_hanoi_ml_column_reproduces_the_published_sem():
    require_reference()
    pt = build_partable((ROOT / "models" / "hanoi_sem.lav").read_text())
    data = pd.read_csv(HANOI_DATA)
    ml = ml_estimates(pt, data, boot=4, seed=1, workers=1, level=0.95)
    published = published_estimates(read_published(HANOI_PUBLISHED), "marker")
    table = comparison_table([ml, published])
    paths = table[table.kind == "path"]
    assert len(paths) == 8  # four paths, raw and std
    np.testing.assert_allclose(paths.ml_est, paths.published_est, atol=1e-3)


@pytest.mark.slow
def test_compare_fits_the_bayesian_model_when_no_run_is_given(project):
    out = project / "fitted"
    code = main(
        [
            "compare",
            str(project / "model.lav"),
            "--data",
            str(project / "data.csv"),
            "--out",
            str(out),
            "--chains",
            "2",
            "--draws",
            "300",
            "--tune",
            "300",
            "--boot",
            "100",
            "--process-boot",
            "500",
            "--workers",
            "2",
            "--allow-warnings",
            "--no-progress",
        ]
    )
    assert code == 0 and (out / "bayes" / "posterior.nc").is_file()
    assert "bayes_sor:compare:begin" in (out / "bayes" / "report.md").read_text()
    table = read_comparison(out / "comparison.csv")
    paths = table[(table.kind == "path") & (table.scale == "std")]
    # weak priors, N = 300: posterior means sit close to the ML estimates
    assert (paths.bayes_est - paths.ml_est).abs().max() < 0.1


def test_tables_show_sd_and_named_moderator_values_but_not_percentiles():
    labels = ["W=-1SD", "W=0SD", "W=+1SD", "W=p16", "W=p50", "W=p84", "W=0.600", "W=-0.531"]
    table = pd.DataFrame(
        {
            "quantity": "X -> M -> Y",
            "kind": "conditional_indirect",
            "moderator_value": labels,
            "scale": "std",
        }
    )
    shown = _shown(table, "std", ("conditional_indirect",))
    assert shown.moderator_value.tolist() == ["W=-1SD", "W=0SD", "W=+1SD", "W=0.600", "W=-0.531"]
