"""Which latent scores are sampled centred: the rule, the choices and their errors."""

import numpy as np
import pandas as pd
import pytest

import bayes_sor
from bayes_sor.errors import ModelSpecError
from bayes_sor.model.parameterisation import (
    INFORMATION_RATIO,
    centred_latents,
    prior_precision,
    sampled_latents,
    score_information,
    standardized_loadings,
)
from bayes_sor.spec.partable import build_partable

MODEL = """
F =~ f1 + f2 + f3
G =~ g1 + g2 + g3
Y =~ y1 + y2 + y3
Y ~ F + G + x + F:G
"""


def _data(
    loadings: dict[str, list[float]], n: int = 2000, seed: int = 0, cor: float = 0.0
) -> pd.DataFrame:
    """Standardised items with the given loadings; exogenous F and G correlated ``cor``,
    Y = 0.5 F + 0.3 x + a unit-variance disturbance scaled to unit total variance."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    f = rng.normal(size=n)
    g = cor * f + np.sqrt(1 - cor**2) * rng.normal(size=n)
    y = 0.5 * f + 0.3 * x + rng.normal(0, np.sqrt(1 - 0.25 - 0.09), n)
    scores = {"F": f, "G": g, "Y": y}
    columns = {"x": x}
    for name, lams in loadings.items():
        for k, lam in enumerate(lams, start=1):
            columns[f"{name.lower()}{k}"] = lam * scores[name] + rng.normal(
                0, np.sqrt(1 - lam**2), n
            )
    return pd.DataFrame(columns)


GOOD = {"F": [0.8, 0.8, 0.8], "G": [0.8, 0.7, 0.9], "Y": [0.8, 0.8, 0.8]}


def test_one_factor_loadings_come_from_the_triads():
    lam = np.array([0.9, 0.7, 0.5, 0.3])
    corr = np.outer(lam, lam)
    np.fill_diagonal(corr, 1.0)
    np.testing.assert_allclose(standardized_loadings(corr), lam**2, rtol=1e-12)
    np.testing.assert_allclose(standardized_loadings(corr[:2, :2]), [0.63, 0.63])


def test_information_is_the_items_fisher_information_about_a_score():
    pt = build_partable(MODEL)
    info = score_information(pt, _data({**GOOD, "G": [0.6, 0.6, 0.6]}))
    assert info["F"] == pytest.approx(3 * 0.64 / 0.36, rel=0.1)  # sum lambda^2 / theta
    assert info["G"] == pytest.approx(3 * 0.36 / 0.64, rel=0.15)
    # one near-perfect item makes a construct far better measured than its alpha (0.78:
    # information 3.5) says; the truth is 0.98 / 0.02 + 2 x 0.36 / 0.64 = 50
    assert score_information(pt, _data({**GOOD, "F": [0.99, 0.6, 0.6]}))["F"] > 15


def test_prior_precision_follows_the_structural_model():
    pt = build_partable(MODEL)
    prior = prior_precision(pt, _data(GOOD))
    assert prior["F"] == pytest.approx(1.0, abs=0.1)  # uncorrelated exogenous latents
    assert prior["Y"] == pytest.approx(1 / (1 - 0.34), rel=0.15)  # 1 / (1 - R^2)
    close = prior_precision(pt, _data(GOOD, cor=0.9))
    assert close["F"] == pytest.approx(1 / (1 - 0.81), rel=0.2)  # given G, F is nearly known


def test_auto_centres_the_latents_whose_items_outweigh_their_prior():
    pt = build_partable(MODEL)
    assert sampled_latents(pt) == ["F", "G", "Y"]  # the observed x is data, never sampled
    data = _data({**GOOD, "G": [0.5, 0.5, 0.5]})  # G: information ~1 < 1.5 x its prior's
    assert centred_latents(pt, data) == ["F", "Y"]
    assert centred_latents(pt, data, "auto") == ["F", "Y"]
    assert centred_latents(pt, data, "centred") == ["F", "G", "Y"]
    assert centred_latents(pt, data, "non-centred") == []
    assert centred_latents(pt, data, ["Y", "G"]) == ["G", "Y"]  # in the table's order
    assert centred_latents(pt, None) == []  # no data (prior draws): nothing to judge by
    # correlated 0.95, each exogenous score is pinned by the other: information 5.3 against a
    # prior precision of ~10
    assert centred_latents(pt, _data(GOOD, cor=0.95)) == ["Y"]
    assert INFORMATION_RATIO == 1.5


def test_single_item_latents_stay_non_centred():
    pt = build_partable("F =~ f1 + f2 + f3\nG =~ g1\ng1 ~~ 0.2*g1\nG ~ F\n")
    data = _data({"F": [0.8, 0.8, 0.8], "G": [0.9]}).drop(columns=["x"])
    assert np.isnan(score_information(pt, data)["G"])  # one item: its loading is unknown
    assert centred_latents(pt, data) == ["F"]


def test_missing_answers_use_the_pairwise_complete_ones():
    pt = build_partable(MODEL)
    data = _data(GOOD)
    data.loc[:400, "f1"] = np.nan
    assert score_information(pt, data)["F"] == pytest.approx(3 * 0.64 / 0.36, rel=0.1)
    assert centred_latents(pt, data) == ["F", "G", "Y"]


def test_the_header_option_and_its_override():
    pt = build_partable("---\nlatent_scores: centred\n---\n" + MODEL)
    data = _data({**GOOD, "G": [0.5, 0.5, 0.5]})
    assert centred_latents(pt, data) == ["F", "G", "Y"]
    assert centred_latents(pt, data, "non-centred") == []


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("centered", "unknown latent-score parameterisation 'centered'; use one of auto, centred"),
        (["F", "x"], r"cannot centre the scores of \['x'\]: not sampled latents"),
    ],
)
def test_unknown_choices_are_named(choice, message):
    with pytest.raises(ModelSpecError, match=message):
        centred_latents(build_partable(MODEL), None, choice)


def test_fit_refuses_an_unknown_choice_before_sampling():
    with pytest.raises(ModelSpecError, match="unknown latent-score parameterisation"):
        bayes_sor.fit(MODEL, _data(GOOD, n=50), latent_scores="centered")
