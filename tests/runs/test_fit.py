"""fit() with groups: the options reach the table (arguments over the header), the data's
groups reach the model (every likelihood), and what multiple groups do not support yet is said
before sampling."""

from __future__ import annotations

import importlib
import warnings

import pandas as pd
import pytest
from paths import ROOT

from bayes_sor.errors import BayesSORError, ModelSpecError
from bayes_sor.runs.fit import fit

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n"


class Sampled(Exception):
    """Raised instead of sampling."""


@pytest.fixture
def built(monkeypatch) -> list:
    """The models fit() builds, sampling replaced by a stop."""
    fit_module = importlib.import_module("bayes_sor.runs.fit")
    seen = []

    def stop(model, settings, stage, **sampling):
        seen.append(model)
        raise Sampled

    monkeypatch.setattr(fit_module, "recorded_build", lambda *args: None)  # always built
    monkeypatch.setattr(fit_module, "sample", stop)
    return seen


def test_group_options_reach_the_model_and_arguments_replace_the_header(built):
    header = "---\ngroup: school\ngroup.equal: [loadings]\n---\n"
    with pytest.raises(Sampled):
        fit(
            header + HS,
            ROOT / "data" / "holzinger_swineford.csv",
            group_equal="loadings,intercepts",
        )
    model = built[0].model
    assert [p.name for p in model.potentials] == ["pooled_prior_normal", "loglik", "loglik_g2"]
    n = model["n_obs"].get_value(), model["n_obs_g2"].get_value()
    assert n == (156, 145)  # Pasteur, Grant-White: lavaan's groups and sizes
    assert "visual~1.g2" in model.coords["param"]


def test_hypotheses_in_a_multiple_group_model_warn_that_they_read_the_first_group(built):
    first = r"evaluated in the first group \('Pasteur'\) only"
    with pytest.warns(UserWarning, match=first), pytest.raises(Sampled):
        fit(
            HS + "# H1: visual =~ x2 > 0\n",
            ROOT / "data" / "holzinger_swineford.csv",
            group="school",
        )


def test_plain_labels_shared_by_the_groups_warn_and_name_the_c_form(built):
    """``b*visual`` in a multiple-group model is one path for both schools (lavaan's rule):
    said, with the c() spelling that frees it; c() labels and loadings made equal by
    --group-equal are not."""
    data = ROOT / "data" / "holzinger_swineford.csv"
    shared = r"label\(s\) b name one parameter shared by every group.*speed ~ c\(b_1, b_2\)\*visual"
    with pytest.warns(UserWarning, match=shared), pytest.raises(Sampled):
        fit(HS + "speed ~ b*visual\n", data, group="school")
    with warnings.catch_warnings(), pytest.raises(Sampled):
        warnings.simplefilter("error")
        fit(
            HS.replace("x2", "l*x2") + "speed ~ c(b1, b2)*visual\n",
            data,
            group="school",
            group_equal="loadings",
        )


def test_latent_interactions_and_ordinal_items_per_group_reach_the_conditional_likelihood(built):
    data = pd.read_csv(ROOT / "data" / "holzinger_swineford.csv")
    data["x1"] = pd.cut(data.x1, [-99, 4, 5, 99], labels=False) + 1
    interaction = HS + "speed ~ visual + textual + visual:textual\n"
    for options in ({"likelihood": "auto"}, {"ordinal": "x1", "group_equal": "thresholds"}):
        with pytest.raises(Sampled), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(interaction, data, group="school", **options)
    assert all(b.likelihood == "conditional" for b in built)
    assert "moderator_quantiles" in built[0].model.named_vars
    assert list(built[1].model.coords["thresholds_dim"]) == ["x1|t1", "x1|t2"]  # shared


def test_what_groups_do_not_support_yet_is_refused_before_sampling(built):
    data = pd.read_csv(ROOT / "data" / "holzinger_swineford.csv")
    interaction = HS + "speed ~ visual + textual + visual:textual\n"
    with pytest.raises(ModelSpecError, match=r"quadrature likelihood cannot be used: .*groups"):
        fit(interaction, data, group="school", likelihood="quadrature")
    # one matrix for a multiple-group model: the groups' matrices are stacked with the column
    with pytest.raises(BayesSORError, match="has no 'school' column: for a multiple-group"):
        fit(HS, cov=data[[f"x{i}" for i in range(1, 10)]].cov(), nobs=301, group="school")
    assert not built


def test_approximate_invariance_needs_groups_and_excludes_equal_kinds(built):
    header = "---\napproximate: {intercepts: 0.1}\n---\n"
    data = ROOT / "data" / "holzinger_swineford.csv"
    with pytest.raises(ModelSpecError, match="group column, and so does approximate"):
        fit(header + HS, data)
    with pytest.raises(ModelSpecError, match=r"intercepts cannot be both in group\.equal"):
        fit(header + HS, data, group="school", group_equal="loadings,intercepts")
    assert not built


def test_hypotheses_between_groups_are_checked_against_the_groups_before_sampling(built):
    data = ROOT / "data" / "holzinger_swineford.csv"
    compare = "# H1: visual =~ x2 [Grant-White] > visual =~ x2 [Pasteur]\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every quantity names its group: no warning
        with pytest.raises(Sampled):
            fit(
                HS + "visual ~~ textual\n" + compare.replace("=~", "~~").replace("x2", "textual"),
                data,
                group="school",
            )
    with pytest.raises(ModelSpecError, match="names the group 'Grant White'"):
        fit(HS + "# H1: visual ~~ textual [Grant White] > 0\n", data, group="school")
    assert len(built) == 1
