"""Multiple-group tables (spec/groups.py): lavaan's group semantics, equality constraints as
shared free numbers, identification of later groups, c() modifiers and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_sor.errors import ModelSpecError, ModelSyntaxError
from bayes_sor.spec.groups import (
    EQUAL_KINDS,
    approximate_rows,
    check_group_values,
    shared_labels,
    with_groups,
)
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import ParTable, add_thresholds, build_partable
from bayes_sor.spec.syntax import parse

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LABELS = ["Pasteur", "Grant-White"]


def grouped(text: str = HS, equal=(), partial=(), identification="marker", labels=LABELS):
    return with_groups(
        build_partable(text, identification=identification), labels, list(equal), list(partial)
    )


def row(pt: ParTable, name: str, group: int):
    t = pt.table
    names = t.lhs + t.op + t.rhs
    return t[(names == name) & (t.group == group)].iloc[0]


def test_configural_each_group_its_own_parameters():
    """lavaan's configural HS model: 30 free parameters per group, none shared; latent means
    fixed to 0 in both groups (lavaan: 60 parameters, 48 df)."""
    pt = grouped()
    assert pt.n_free == 60
    assert sorted(pt.table.group.unique()) == [1, 2]
    g1 = pt.table[(pt.table.group == 1) & (pt.table.free > 0)].free
    g2 = pt.table[(pt.table.group == 2) & (pt.table.free > 0)].free
    assert not set(g1) & set(g2)
    for g in (1, 2):
        assert row(pt, "visual~1", g).free == 0 and row(pt, "visual~1", g).value == 0
    assert pt.names[len(pt.names) // 2] == "visual=~x1.g2"
    assert len(set(pt.names)) == len(pt.names)


@pytest.mark.parametrize(
    ("equal", "n_free"),
    [
        (["loadings"], 54),
        (["loadings", "intercepts"], 48),
        (["loadings", "intercepts", "residuals"], 39),
    ],
)
def test_invariance_steps_have_lavaans_parameter_counts(equal, n_free):
    """metric 54, scalar 48, strict 39 free parameters: lavaan's npar (df 54, 60, 69)."""
    assert grouped(equal=equal).n_free == n_free


def test_group_equal_rows_share_the_first_groups_free_number():
    pt = grouped(equal=["loadings", "intercepts"])
    for name in ("visual=~x2", "speed=~x9", "x3~1"):
        assert row(pt, name, 1).free == row(pt, name, 2).free > 0
    for name in ("x3~~x3", "visual~~textual"):
        assert row(pt, name, 1).free != row(pt, name, 2).free
    # intercepts equal: latent means free in the second group only (lavaan)
    assert row(pt, "visual~1", 1).free == 0 and row(pt, "visual~1", 2).free > 0
    assert row(pt, "visual~1", 2).prior == "normal(0,32)"


def test_group_partial_frees_one_row():
    pt = grouped(equal=["loadings", "intercepts"], partial=["x3 ~ 1", "visual=~x2"])
    assert row(pt, "x3~1", 1).free != row(pt, "x3~1", 2).free
    assert row(pt, "visual=~x2", 1).free != row(pt, "visual=~x2", 2).free
    assert row(pt, "x4~1", 1).free == row(pt, "x4~1", 2).free
    assert pt.n_free == 50


def test_std_lv_frees_later_latent_variances_when_loadings_are_equal():
    configural = grouped(identification="std.lv")
    metric = grouped(equal=["loadings"], identification="std.lv")
    for g in (1, 2):
        assert row(configural, "visual~~visual", g).free == 0
    assert row(metric, "visual~~visual", 1).free == 0
    assert row(metric, "visual~~visual", 2).free > 0
    assert row(metric, "visual~~visual", 2).prior == "gamma(1,0.5)[sd]"
    # lv.variances equal as well: the second group keeps the first's unit variance
    both = grouped(equal=["loadings", "lv.variances"], identification="std.lv")
    assert row(both, "visual~~visual", 2).free == 0
    assert row(both, "visual~~visual", 2).value == 1


def test_plain_label_is_one_parameter_in_every_group_c_labels_one_each():
    text = HS.replace("x2 +", "a*x2 +").replace("x5 +", "c(b1, b2)*x5 +")
    pt = grouped(text)
    assert row(pt, "visual=~x2", 1).free == row(pt, "visual=~x2", 2).free
    assert row(pt, "textual=~x5", 1).label == "b1"
    assert row(pt, "textual=~x5", 2).label == "b2"
    assert row(pt, "textual=~x5", 1).free != row(pt, "textual=~x5", 2).free
    # the same label in both entries of c() is an equality constraint too
    same = grouped(HS.replace("x5 +", "c(b, b)*x5 +"))
    assert row(same, "textual=~x5", 1).free == row(same, "textual=~x5", 2).free


def test_c_values_fix_or_free_per_group():
    pt = grouped(HS.replace("x6\n", "c(1, NA)*x6\n"))
    assert row(pt, "textual=~x6", 1).free == 0 and row(pt, "textual=~x6", 1).value == 1
    second = row(pt, "textual=~x6", 2)
    assert second.free > 0 and np.isnan(second.value) and second.prior == "normal(0,10)"


def test_representation_of_a_group_indexes_the_whole_vector():
    pt = grouped(equal=["loadings", "intercepts"])
    rep1, rep2 = representation(pt, 1), representation(pt, 2)
    names = pt.names
    assert names[rep2.lambda_[1, 0]] == "visual=~x2.g2"
    assert names[rep1.lambda_[1, 0]] == "visual=~x2"
    assert names[rep2.alpha[0]] == "visual~1.g2"
    assert rep1.n_par == rep2.n_par == len(names)
    # a table of one group has no latent means
    assert representation(build_partable(HS)).alpha is None


def test_roles_come_from_the_first_group():
    pt = grouped("f =~ y1 + y2 + y3\ng =~ y4 + y5 + y6\ng ~ f + z")
    assert pt.latents == ["f", "g", "z"]
    assert pt.observed_structural == ["z"]
    assert len(pt.regressions) == 2


def test_c_parses_labels_numbers_strings_and_na():
    spec = parse("f =~ c(a1, 'a2')*x1 + c(1, NA)*x2 + x3")
    assert spec.statements[0].per_group == ("a1", "a2")
    assert spec.statements[1].per_group == (1.0, None)
    with pytest.raises(ModelSyntaxError, match="both c"):
        parse("f =~ a*c(a1, a2)*x1 + x2 + x3")
    with pytest.raises(ModelSyntaxError, match=r"',' or '\)' in c"):
        parse("f =~ c(a1 a2)*x1 + x2 + x3")


def test_c_with_the_wrong_number_of_values():
    text = HS.replace("x5 +", "c(b1, b2, b3)*x5 +")
    with pytest.raises(
        ModelSpecError,
        match=r"model line 2: c\(\.\.\.\) on 'textual =~ x5' gives 3 values, but the model "
        r"is fitted to 2 groups",
    ):
        grouped(text)
    with pytest.raises(ModelSpecError, match="fitted to one group"):
        check_group_values(build_partable(HS.replace("x5 +", "c(b1, b2)*x5 +")), 1)


def test_unknown_group_equal_kind_and_partial_row():
    with pytest.raises(ModelSpecError, match=r"unknown kind\(s\) \['loading'\]; the kinds are"):
        grouped(equal=["loading"])
    with pytest.raises(ModelSpecError, match=r"group.partial names \['visual=~x9'\]"):
        grouped(equal=["loadings"], partial=["visual=~x9"])
    assert "residual.covariances" in EQUAL_KINDS


def test_header_options_reach_the_expansion():
    text = "---\ngroup: school\ngroup.equal: loadings, intercepts\ngroup.partial: [x3~1]\n---\n"
    pt = with_groups(build_partable(text + HS), LABELS)
    assert pt.options["group.equal"] == ["loadings", "intercepts"]
    assert row(pt, "x3~1", 1).free != row(pt, "x3~1", 2).free
    assert row(pt, "x4~1", 1).free == row(pt, "x4~1", 2).free


def test_counting_rule_over_groups():
    """One factor, three items: 9 parameters for 9 moments per group; freeing the second
    group's latent variance without equal loadings makes 19 for 18."""
    text = "f =~ y1 + y2 + y3\nf ~~ c(1, NA)*f"
    assert with_groups(build_partable(text), ["a", "b"], ["loadings"]).n_free == 16
    with pytest.raises(ModelSpecError, match=r"19 free parameters .* only 18 moments"):
        with_groups(build_partable(text), ["a", "b"])


# ---- approximate invariance ----------------------------------------------------------------
APPROXIMATE = "---\napproximate: {loadings: 0.05, intercepts: 0.1}\n---\nF =~ y1 + y2 + y3\n"


def test_approximate_rows_each_group_its_own_number_identified_as_equal():
    """Approximately equal loadings/intercepts keep a free number per group (drawn around a
    common value by the model), the later group's latent variance and mean are free as under
    group.equal, and the counting rule counts each approximate parameter once: 3 items give
    9 moments per group, and 18 + 2 free numbers pass."""
    pt = with_groups(build_partable(APPROXIMATE), ["a", "b"])
    rows = approximate_rows(pt)
    assert rows.name.tolist() == ["F=~y1", "F=~y2", "F=~y3", "y1~1", "y2~1", "y3~1"]
    assert rows.sd.tolist() == [0.05] * 3 + [0.1] * 3
    for name, free in zip(rows.name, rows.free, strict=True):
        assert free == [row(pt, name, 1).free, row(pt, name, 2).free] and free[0] != free[1]
    assert row(pt, "F~~F", 1).free == 0 and row(pt, "F~~F", 2).free > 0
    assert row(pt, "F~1", 1).free == 0 and row(pt, "F~1", 2).free > 0
    assert pt.n_free == 20 and pt.options["approximate"] == {"loadings": 0.05, "intercepts": 0.1}


def test_approximate_leaves_out_partial_and_fixed_rows():
    text = APPROXIMATE.replace("---\nF", "group.partial: [y2~1]\n---\nF")
    pt = with_groups(build_partable(text, identification="marker"), ["a", "b"])
    assert approximate_rows(pt).name.tolist() == ["F=~y2", "F=~y3", "y1~1", "y3~1"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("{residuals: 0.1}", "approximate names the kind 'residuals'"),
        ("{loadings: -0.1}", "must be a positive number"),
        ("{loadings: yes}", "must be a positive number"),
        ("0.1", "approximate must map kinds to prior SDs"),
    ],
)
def test_bad_approximate_option(option, message):
    text = f"---\napproximate: {option}\n---\nF =~ y1 + y2 + y3\n"
    with pytest.raises(ModelSpecError, match=message):
        with_groups(build_partable(text), ["a", "b"])


def test_a_kind_both_equal_and_approximate_is_refused():
    with pytest.raises(ModelSpecError, match=r"loadings cannot be both in group\.equal"):
        with_groups(build_partable(APPROXIMATE), ["a", "b"], ["loadings"])


def test_equal_thresholds_free_later_residual_variances_of_items_with_three_categories():
    """Theta parameterisation with equal thresholds: a later group's latent responses may
    differ in scale where two or more thresholds pin it; a binary item's one threshold
    cannot, so its residual variance stays 1 (Wu & Estabrook 2016)."""
    base = build_partable("---\nordinal: all\n---\nF =~ u1 + u2 + u3 + u4", identification="marker")
    base = add_thresholds(base, {"u1": 4, "u2": 2, "u3": 3, "u4": 2})
    pt = with_groups(base, LABELS, ["loadings", "thresholds"])
    for item, freed in {"u1": True, "u2": False, "u3": True, "u4": False}.items():
        assert row(pt, f"{item}~~{item}", 1).free == 0, item
        assert (row(pt, f"{item}~~{item}", 2).free > 0) == freed, item
        if not freed:
            assert row(pt, f"{item}~~{item}", 2).value == 1.0, item
    assert row(pt, "F~1", 2).free > 0


def test_shared_labels_are_the_plain_ones_group_equal_leaves_free():
    text = HS.replace("+ x2", "+ l*x2") + "\nspeed ~ b*visual + c(g1, g2)*textual"
    assert shared_labels(grouped(text)) == ["b", "l"]
    assert shared_labels(grouped(text, equal=["loadings"])) == ["b"]
    assert shared_labels(grouped(text, equal=["loadings", "regressions"])) == []
