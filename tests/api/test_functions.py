"""The Python API's calls (bayes_sor/api/functions.py) beyond the fit itself: simulate and
SBC as the commands do them, and the fit's keyword options."""

import importlib
import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paths import ROOT
from sem_models import MEDIATION

import bayes_sor as bs
from bayes_sor.cli.main import main

HS = "models/holzinger_swineford.lav"
HS_PRIORS = "models/holzinger_swineford.sbc_priors.yaml"


def test_simulate_gives_the_commands_answers_and_truth(tmp_path):
    model = tmp_path / "model.lav"
    model.write_text("---\nscale: 1-7\n---" + MEDIATION)
    simulated = bs.simulate(model, 60, seed=2)
    out, truth = tmp_path / "sim.csv", tmp_path / "truth.csv"
    argv = ["simulate", str(model), "--nobs", "60", "--seed", "2", "--out", str(out)]
    assert main([*argv, "--truth-out", str(truth)]) == 0
    pd.testing.assert_frame_equal(simulated.data, pd.read_csv(out))
    pd.testing.assert_frame_equal(
        simulated.truth, pd.read_csv(truth, keep_default_na=False), check_dtype=False
    )
    assert simulated.data.isin(range(1, 8)).all().all()
    # at a given truth, continuous scores
    at_truth = bs.simulate(model, 60, seed=2, truth=simulated.truth, scale="none")
    assert not np.allclose(at_truth.data, at_truth.data.round())
    with pytest.raises(bs.BayesSORError, match="--nobs"):
        bs.simulate(model, 0)


def test_the_packages_sbc_stays_the_api_function_once_the_sbc_modules_load():
    """``bs.sbc`` is the API's function, also after its SBC modules load (they load on first
    use; the subpackage's own import must not take the package's name ``sbc``)."""
    importlib.import_module("bayes_sor.sbc.run")
    assert bs.sbc is importlib.import_module("bayes_sor.api.functions").sbc
    assert bs.SBCResult is importlib.import_module("bayes_sor.sbc.run").SBCResult


def test_sbc_warns_once_about_vague_priors_and_reads_a_prior_file(monkeypatch, tmp_path):
    calls = []

    def run_sbc(config, out, sims, **options):
        calls.append((config, out, sims, options))
        return "result"

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(importlib.import_module("bayes_sor.sbc.run"), "run_sbc", run_sbc)
    with pytest.warns(UserWarning, match="vague default priors for loadings") as caught:
        assert bs.sbc(HS, 301, tmp_path / "a", 20, draws=200, workers=1) == "result"
    assert len(caught) == 1 and f"--priors {HS_PRIORS} (bundled" in str(caught[0].message)
    config, out, sims, options = calls[-1]
    assert (config.draws, config.nobs, out, sims) == (200, 301, tmp_path / "a", 20)
    assert options["workers"] == 1 and options["executor"] == "local"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bs.sbc(HS, 301, tmp_path / "b", 20, priors=Path(HS_PRIORS))
    assert calls[-1][0].priors["loadings"]
    with pytest.raises(bs.ModelSpecError, match="--nobs"):
        bs.sbc(HS, 3, tmp_path / "c")


def test_moderator_values_as_the_command_line_gives_them(monkeypatch):
    """``moderator_values=["W=..."]`` is parsed as ``--moderator-values``; a misspelt
    moderator fails before sampling, as on the command line."""
    with pytest.raises(bs.ModelSpecError, match="Q"):
        bs.fit(MEDIATION, pd.DataFrame(), moderator_values=["Q=1,2"])


def api_names() -> dict[str, object]:
    """The package's public names defined in the API layer, and the public methods and
    properties of its classes."""
    names = {}
    for name in bs.__all__:
        obj = getattr(bs, name)
        if not getattr(obj, "__module__", "").startswith("bayes_sor.api"):
            continue
        names[name] = obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_"):
                    plain = member.fget if isinstance(member, property) else getattr(obj, attr)
                    names[f"{name}.{attr}"] = plain
    return names


def test_every_public_name_of_the_api_has_a_numpydoc_docstring():
    names = api_names()
    assert {"fit", "load", "compare", "FittedModel.ppc", "FittedModel.estimates"} <= set(names)
    for name, obj in names.items():
        doc = inspect.getdoc(obj) or ""
        assert doc.strip(), f"{name} has no docstring"
        if not callable(obj) or inspect.isclass(obj):
            continue
        parameters = [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.name not in ("self", "cls") and p.kind is not p.VAR_KEYWORD
        ]
        if parameters:
            assert "Parameters\n----------" in doc, f"{name} has no numpydoc Parameters"
