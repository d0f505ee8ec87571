"""Starting values: data-based, and found without compiling anything."""

from __future__ import annotations

import pandas as pd
import pytest
from paths import ROOT
from pytensor.graph.basic import Variable

from bayes_sor.model.build import pymc_model
from bayes_sor.runs.fit import read_model
from bayes_sor.spec.partable import build_partable


def test_residual_correlations_start_at_one_half_without_a_compiled_function(monkeypatch):
    """PoliticalDemocracy's six residual covariances: their start values' shape is the
    variable's static shape; evaluating a random draw to learn it compiled a PyTensor function,
    0.5 s of every PD fit."""
    partable = build_partable(read_model(ROOT / "models/political_democracy.lav"))
    data = pd.read_csv(ROOT / "data/political_democracy.csv")

    def compiled(*args, **kwargs):
        pytest.fail("a PyTensor function was compiled for the start values")

    monkeypatch.setattr(Variable, "eval", compiled)
    built = pymc_model(partable, data, likelihood="marginal")
    assert built.initial_values["residual_cor_raw"].tolist() == [0.5] * 6
