"""The parameter table: golden table of the Study A model, defaults, identification, priors,
equality constraints, roles, and every ModelSpecError (with the line/variable and the fix)."""

from __future__ import annotations

import re

import pytest
from paths import MODELS

from bayes_sor.errors import BayesSORError, ModelSpecError, ModelSyntaxError
from bayes_sor.spec.partable import COLUMNS, DEFAULT_PRIORS, ParTable, build_partable, row_name
from bayes_sor.spec.syntax import parse

STUDY_A = (MODELS / "impulse_buying.lav").read_text()
STUDY_B = (MODELS / "purchase_intention.lav").read_text()
LATENTS_A = ["PI", "AI", "MI", "SI", "CT", "IT", "IB"]
EXOGENOUS_A = ["PI", "AI", "MI", "SI", "IT"]
#: a small valid two-factor model that error cases extend
BASE = "F =~ x1 + x2 + x3\nG =~ y1 + y2 + y3\n"


@pytest.fixture(scope="module")
def study_a() -> ParTable:
    return build_partable(STUDY_A)


@pytest.fixture(scope="module")
def study_a_marker() -> ParTable:
    return build_partable(STUDY_A, identification="marker")


def rows(pt: ParTable, op: str, lhs: str | None = None, rhs: str | None = None):
    t = pt.table
    mask = t.op == op
    if lhs is not None:
        mask &= t.lhs == lhs
    if rhs is not None:
        mask &= t.rhs == rhs
    return t[mask]


def row(pt: ParTable, lhs: str, op: str, rhs: str = ""):
    (found,) = rows(pt, op, lhs, rhs).itertuples()
    return found


# ---- golden table: Study A under std.lv --------------------------------------------------


def test_study_a_columns_and_size(study_a):
    t = study_a.table
    assert list(t.columns) == COLUMNS
    # 33 loadings + 11 regressions (user), 33 residual variances + 33 intercepts,
    # 7 latent variances, 10 exogenous covariances (defaults)
    assert len(t) == 33 + 11 + 33 + 33 + 7 + 10
    assert int(t.user.sum()) == 44
    assert (t.loc[t.user == 0, "line"] == 0).all()


def test_study_a_roles(study_a):
    assert study_a.latents == LATENTS_A
    assert len(study_a.indicators) == 33
    assert study_a.indicators[:6] == ["pi1", "pi2", "pi3", "pi4", "pi5", "ai1"]
    assert study_a.exogenous == EXOGENOUS_A
    assert study_a.endogenous == ["CT", "IB"]
    assert study_a.moderators == ["IT"]
    assert study_a.interactions == [("IB", "CT", "IT")]
    order = study_a.order
    assert sorted(order) == sorted(LATENTS_A)
    assert order.index("CT") > max(order.index(f) for f in ["PI", "AI", "MI", "SI"])
    assert order.index("IB") > max(order.index(f) for f in ["CT", "IT"])
    assert study_a.ordinal_items() == []
    assert study_a.options["identification"] == "std.lv"
    assert len(study_a.hypotheses) == 10


def test_study_a_free_parameters(study_a):
    t = study_a.table
    # 33 loadings + 11 regressions + 33 residual variances + 33 intercepts + 10 covariances
    assert study_a.n_free == 120
    free = t.loc[t.free > 0, "free"]
    assert sorted(free) == list(range(1, 121))  # no shared labels: every free row its own index
    assert len(study_a.parameters) == len(t) and study_a.defined.empty


def test_study_a_loadings_and_priors(study_a):
    loadings = rows(study_a, "=~")
    assert len(loadings) == 33 and (loadings.free > 0).all()
    first = loadings.groupby("lhs", sort=False).head(1)
    assert list(first.rhs) == ["pi1", "ai1", "mi1", "si1", "ct1", "it1", "ib1"]
    assert set(first.prior) == {"halfnormal(10)"}  # sign constraint under std.lv
    assert set(loadings.drop(first.index).prior) == {DEFAULT_PRIORS["loadings"]}
    assert row(study_a, "PI", "=~", "pi1").line == 7


def test_study_a_latent_variances_fixed_under_std_lv(study_a):
    variances = study_a.table[
        (study_a.table.op == "~~")
        & (study_a.table.lhs == study_a.table.rhs)
        & study_a.table.lhs.isin(LATENTS_A)
    ]
    assert list(variances.lhs) == LATENTS_A
    assert (variances.free == 0).all() and (variances.value == 1.0).all()
    assert (variances.prior == "").all()


def test_study_a_structural_rows(study_a):
    regressions = rows(study_a, "~")
    assert len(regressions) == 11
    assert list(rows(study_a, "~", "CT").label) == ["a1", "a2", "a3", "a4"]
    interaction = row(study_a, "IB", "~", "CT:IT")
    assert (interaction.label, interaction.line, interaction.prior) == ("d", 18, "normal(0,10)")
    assert interaction.free > 0
    assert row(study_a, "IB", "~", "IT").label == ""
    assert set(regressions.prior) == {DEFAULT_PRIORS["regressions"]}
    assert "IB~CT:IT" in study_a.names and "pi1~1" in study_a.names
    assert row_name("IB", "~", "CT:IT") == "IB~CT:IT"


def test_study_a_item_defaults(study_a):
    items = study_a.indicators
    residuals = study_a.table[
        (study_a.table.op == "~~")
        & (study_a.table.lhs == study_a.table.rhs)
        & study_a.table.lhs.isin(items)
    ]
    intercepts = rows(study_a, "~1")
    assert list(residuals.lhs) == items and list(intercepts.lhs) == items
    assert set(residuals.prior) == {DEFAULT_PRIORS["variances"]}
    assert set(intercepts.prior) == {DEFAULT_PRIORS["intercepts"]}
    assert (residuals.free > 0).all() and (intercepts.free > 0).all()
    assert (residuals.user == 0).all() and (intercepts.rhs == "").all()


def test_study_a_exogenous_covariances(study_a):
    covariances = study_a.table[
        (study_a.table.op == "~~") & (study_a.table.lhs != study_a.table.rhs)
    ]
    pairs = {frozenset(p) for p in zip(covariances.lhs, covariances.rhs, strict=True)}
    expected = {frozenset((a, b)) for i, a in enumerate(EXOGENOUS_A) for b in EXOGENOUS_A[i + 1 :]}
    assert pairs == expected and len(covariances) == 10
    assert set(covariances.prior) == {"lkj(1)"}
    assert (covariances.free > 0).all()
    assert not {"CT", "IB"} & (set(covariances.lhs) | set(covariances.rhs))


# ---- Study A under marker identification -------------------------------------------------


def test_study_a_marker(study_a_marker):
    pt = study_a_marker
    assert pt.options["identification"] == "marker"
    loadings = rows(pt, "=~")
    first = loadings.groupby("lhs", sort=False).head(1)
    assert (first.free == 0).all() and (first.value == 1.0).all() and (first.prior == "").all()
    others = loadings.drop(first.index)
    assert (others.free > 0).all() and set(others.prior) == {"normal(0,10)"}
    for f in LATENTS_A:
        variance = row(pt, f, "~~", f)
        assert variance.free > 0 and variance.prior == DEFAULT_PRIORS["variances"]
    assert pt.n_free == 120  # 7 loadings fixed, 7 latent variances freed
    assert pt.exogenous == EXOGENOUS_A and pt.interactions == [("IB", "CT", "IT")]


def test_identification_from_header_and_argument_override():
    text = "---\nidentification: marker\n---\n" + BASE
    assert build_partable(text).options["identification"] == "marker"
    assert row(build_partable(text), "F", "=~", "x1").free == 0
    overridden = build_partable(text, identification="std.lv")
    assert overridden.options["identification"] == "std.lv"
    assert row(overridden, "F", "=~", "x1").prior == "halfnormal(10)"
    assert row(overridden, "F", "~~", "F").free == 0


def test_build_from_a_parsed_spec_equals_build_from_text():
    a = build_partable(parse(STUDY_B)).table
    b = build_partable(STUDY_B).table
    assert a.equals(b)


def test_study_b_roles():
    pt = build_partable(STUDY_B)
    assert pt.exogenous == ["AE", "AX", "OL", "IQ", "AF"]
    assert pt.endogenous == ["PU", "SP", "PIN"]
    assert pt.order[-1] == "PIN" and pt.moderators == [] and pt.interactions == []
    # no covariances among endogenous (residual) latents are added by default
    cov = pt.table[(pt.table.op == "~~") & (pt.table.lhs != pt.table.rhs)]
    assert len(cov) == 10 and not set(cov.lhs) & {"PU", "SP", "PIN"}


# ---- equality constraints, user modifiers, defined parameters ------------------------------


def test_shared_labels_share_one_free_parameter():
    plain = build_partable(BASE)
    equal = build_partable("F =~ x1 + a*x2 + a*x3\nG =~ y1 + y2 + y3\n")
    assert equal.n_free == plain.n_free - 1
    x2, x3 = row(equal, "F", "=~", "x2"), row(equal, "F", "=~", "x3")
    assert x2.free == x3.free > 0 and x2.label == x3.label == "a"
    assert x2.prior == x3.prior == "normal(0,10)"
    # equal("a") is the same constraint
    again = build_partable('F =~ x1 + a*x2 + equal("a")*x3\nG =~ y1 + y2 + y3\n')
    assert row(again, "F", "=~", "x3").free == row(again, "F", "=~", "x2").free


def test_equality_across_factors_and_regressions():
    text = BASE + "H =~ z1 + z2 + z3\nH ~ b*F + b*G\n"
    pt = build_partable(text)
    assert row(pt, "H", "~", "F").free == row(pt, "H", "~", "G").free


def test_user_modifiers_reach_the_table():
    pt = build_partable(
        'F =~ x1 + 0.8*x2 + start(0.5)*x3 + prior("normal(1,2)")*x4\n'
        "G =~ y1 + y2 + y3\nx1 ~~ x2\nF ~~ 0*G\n"
    )
    x2, x3, x4 = (row(pt, "F", "=~", x) for x in ("x2", "x3", "x4"))
    assert (x2.free, x2.value, x2.prior) == (0, 0.8, "")
    assert x3.free > 0 and x3.value == 0.5
    assert x4.prior == "normal(1,2)"
    assert row(pt, "x1", "~~", "x2").prior == DEFAULT_PRIORS["residual_covariances"]
    fixed_cov = row(pt, "F", "~~", "G")
    assert (fixed_cov.free, fixed_cov.value, fixed_cov.user) == (0, 0.0, 1)
    assert len(pt.table[(pt.table.op == "~~") & (pt.table.lhs == "G") & (pt.table.rhs == "F")]) == 0


def test_user_covariance_written_backwards_is_not_duplicated_by_defaults():
    pt = build_partable(BASE + "G ~~ F\n")
    cov = pt.table[(pt.table.op == "~~") & (pt.table.lhs != pt.table.rhs)]
    assert len(cov) == 1 and cov.iloc[0].user == 1 and cov.iloc[0].prior == "lkj(1)"


def test_na_frees_the_marker_loading():
    pt = build_partable(
        "F =~ NA*x1 + x2 + x3\nF ~~ 1*F\nG =~ y1 + y2 + y3\n", identification="marker"
    )
    assert row(pt, "F", "=~", "x1").free > 0
    assert row(pt, "F", "~~", "F").free == 0
    assert row(pt, "G", "=~", "y1").free == 0  # other factors keep their marker


def test_user_fixed_loading_replaces_the_marker():
    pt = build_partable("F =~ x1 + 1*x2 + x3\nG =~ y1 + y2 + y3\n", identification="marker")
    assert row(pt, "F", "=~", "x1").free > 0 and row(pt, "F", "=~", "x2").free == 0


def test_defined_parameters():
    text = (MODELS / "political_democracy.lav").read_text()
    pt = build_partable(text)
    defined = pt.defined
    assert list(defined.lhs) == ["ind60_dem65_indirect", "ind60_dem65_total"]
    assert list(defined.rhs) == ["a*b", "c + a*b"]
    assert (defined.free == 0).all() and (defined.prior == "").all()
    assert ":=" not in set(pt.parameters.op)
    assert not any(n.startswith("ind60_dem65") for n in pt.names)
    cov = pt.table[(pt.table.op == "~~") & (pt.table.lhs != pt.table.rhs)]
    assert len(cov) == 6 and set(cov.prior) == {DEFAULT_PRIORS["residual_covariances"]}


def test_definitions_may_use_earlier_definitions():
    pt = build_partable(BASE + "G ~ b*F\nd := 2*b\ne := d^2 - b\n")
    assert list(pt.defined.lhs) == ["d", "e"]


# ---- options: ordinal items, priors ------------------------------------------------------


def test_ordinal_items_fix_intercepts_and_residual_variances():
    pt = build_partable(BASE, ordinal=["x1", "y2"])
    assert pt.options["identification"] == "std.lv"
    for item in ("x1", "y2"):
        assert (row(pt, item, "~~", item).free, row(pt, item, "~~", item).value) == (0, 1.0)
        assert (row(pt, item, "~1").free, row(pt, item, "~1").value) == (0, 0.0)
    assert row(pt, "x2", "~1").free > 0
    everything = build_partable(BASE, ordinal="all")
    assert (rows(everything, "~1").free == 0).all()
    assert build_partable(BASE, ordinal="x1, x3").table.pipe(
        lambda t: list(t[(t.op == "~1") & (t.free == 0)].lhs)
    ) == ["x1", "x3"]
    from_header = build_partable("---\nordinal: [x2]\n---\n" + BASE)
    assert row(from_header, "x2", "~1").free == 0


def test_prior_overrides():
    pt = build_partable(
        BASE + "G ~ F\n", priors={"regressions": "normal(0,1)", "loadings": "normal(0,2)"}
    )
    assert row(pt, "G", "~", "F").prior == "normal(0,1)"
    assert row(pt, "F", "=~", "x1").prior == "halfnormal(2)"
    assert row(pt, "F", "=~", "x2").prior == "normal(0,2)"
    header = build_partable("---\npriors:\n  intercepts: normal(0,5)\n---\n" + BASE)
    assert row(header, "x1", "~1").prior == "normal(0,5)"
    both = build_partable(
        "---\npriors:\n  intercepts: normal(0,5)\n---\n" + BASE,
        priors={"intercepts": "normal(0,7)"},
    )
    assert row(both, "x1", "~1").prior == "normal(0,7)"  # the argument wins over the header
    user = build_partable('F =~ prior("normal(0,3)")*x1 + x2 + x3\nG =~ y1 + y2 + y3\n')
    assert row(user, "F", "=~", "x1").prior == "normal(0,3)"  # user's prior kept verbatim


def test_prior_scale_widens_every_prior_chosen_by_kind_but_not_a_statements_own():
    text = 'F =~ x1 + prior("normal(0,3)")*x2 + x3\nG =~ y1 + y2 + y3\nG ~ F\n'
    wide = build_partable(text, prior_scale=2, priors={"regressions": "normal(0,1)"})
    assert row(wide, "F", "=~", "x1").prior == "halfnormal(20)"  # sign-constrained first loading
    assert row(wide, "F", "=~", "x2").prior == "normal(0,3)"
    assert row(wide, "F", "=~", "x3").prior == "normal(0,20)"
    assert row(wide, "G", "~", "F").prior == "normal(0,2)"  # the override is widened too
    assert row(wide, "x1", "~~", "x1").prior == "gamma(1,0.25)[sd]"
    assert row(wide, "x1", "~1").prior == "normal(0,64)"
    assert wide.options["prior_scale"] == 2


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        # cycles
        (
            BASE + "H =~ z1 + z2 + z3\nG ~ F + H\nH ~ G\n",
            {},
            r"cycle among G -> H \(regressions on model lines 4, 5\).*remove one of the paths",
        ),
        (BASE + "G ~ G\n", {}, r"cycle among G .*model lines 3"),
        # unknown variables
        (BASE + "x1 ~~ q\n", {}, r"model line 3: 'q' is not a variable .*check the spelling"),
        (BASE + "q ~~ x1\n", {}, r"model line 3: 'q' is not a variable"),
        (BASE + "q ~ 1\n", {}, r"model line 3: 'q' is not a variable"),
        (BASE + "q | t1\n", {}, r"model line 3: 'q' is not a variable"),
        # regressions onto / from indicators
        (
            BASE + "x1 ~ F\n",
            {},
            r"model line 3: the outcome 'x1' of a regression is an indicator.*define it",
        ),
        (BASE + "G ~ x1\n", {}, r"model line 3: the predictor 'x1' .* not a latent variable"),
        (
            BASE + "H =~ F + G\n",
            {},
            r"model line 3: 'F' is a latent variable used as an indicator of 'H'.*'F ~ H'",
        ),
        (
            BASE + "H =~ z1+z2+z3\nG ~ F + H + F:H:G\n",
            {},
            r"model line 4: only two-way interactions .*'F:H:G'.*such as 'G ~ F:H'",
        ),
        # duplicates
        (BASE + "F =~ x1\n", {}, r"model line 3: 'F =~ x1' repeats line 1; state each"),
        (BASE + "x1 ~~ x2\nx2 ~~ x1\n", {}, r"model line 4: 'x2 ~~ x1' repeats line 3"),
        (BASE + "G ~ F\nG ~ 0.5*F\n", {}, r"model line 4: 'G ~ F' repeats line 3"),
        (
            BASE + "G ~ b*F\nd := b\nd := 2*b\n",
            {},
            r"model lines 4, 5: the ':=' name 'd' is defined twice; give each",
        ),
        # unscaled latents
        (
            BASE + "F ~~ NA*F\n",
            {},
            r"latent 'F' has no scale: fix its variance \('F ~~ 1\*F'\) or one loading "
            r"\('F =~ 1\*x1'\)",
        ),
        (
            "F =~ a*x1 + x2 + x3\nG =~ y1 + y2 + y3\n",
            {"identification": "marker"},
            r"latent 'F' has no scale",
        ),
        (
            "F =~ NA*x1 + x2 + x3\nG =~ y1 + y2 + y3\n",
            {"identification": "marker"},
            r"latent 'F' has no scale.*'F ~~ 1\*F'",
        ),
        # over-parameterised models
        (
            "F =~ x1 + x2\n",
            {},
            r"6 free parameters but the 2 items give only 5 moments.*not identified; fix "
            r"parameters or add items",
        ),
        (
            BASE + "H =~ z\nH ~ F\n",
            {},
            r"latent 'H' has a single indicator 'z' with a free residual variance: fix it "
            r"\('z ~~ 0\*z'\)",
        ),
        # inconsistent labels
        (
            "F =~ x1 + a*x2 + x3\nG =~ y1 + y2 + y3\nG ~ a*F\n",
            {},
            r"label 'a' is used for different kinds .*loadings.*regressions.*lines \[1, 3\]; "
            r"use distinct labels",
        ),
        (
            "F =~ x1 + a*x2 + x3\nG =~ y1 + 1*a*y2 + y3\n",
            {},
            r"label 'a' \(model lines \[1, 2\]\) is shared by fixed and free parameters.*"
            r"free all of them, or use distinct labels",
        ),
        (
            "F =~ x1 + 1*a*x2 + x3\nG =~ y1 + 2*a*y2 + y3\n",
            {},
            r"label 'a' .* by different fixed values",
        ),
        # definitions
        (
            BASE + "G ~ b*F\nind := a*b\n",
            {},
            r"model line 4: the definition of 'ind' uses unknown label\(s\) \['a'\]; label the",
        ),
        (
            BASE + "G ~ b*F\nx1 := b\n",
            {},
            r"model line 4: the defined name 'x1' is already a variable; give the definition",
        ),
        (
            BASE + "G ~ b*F\nb := 2*b\n",
            {},
            r"defined name\(s\) \['b'\] are also parameter labels; give each ':=' its own name",
        ),
        (
            BASE + "G ~ b*F\ne := d^2\nd := 2*b\n",
            {},
            r"model line 4: the definition of 'e' uses unknown label\(s\) \['d'\] "
            r"\(define \['d'\] before this line\)",
        ),
        (BASE + "G ~ b*F\nd := d + b\n", {}, r"definition of 'd' uses unknown label\(s\) \['d'\]"),
        # no measurement part, bad options
        (BASE, {"identification": "fixed"}, r"unknown identification 'fixed'; use 'std.lv'"),
        (
            BASE,
            {"priors": {"slopes": "normal(0,1)"}},
            r"unknown prior kind\(s\) \['slopes'\]; the kinds are \['intercepts'",
        ),
        (
            BASE,
            {"priors": {"loadings": "normal(1,1)"}},
            r"first loading .* constrained positive .*'normal\(1,1\)'.*use e.g. 'normal\(0,10\)'",
        ),
        (
            "---\npriors: [normal]\n---\n" + BASE,
            {},
            r"the header's 'priors' must map parameter kinds to prior text",
        ),
        ("---\npriors: {loadings: 5}\n---\n" + BASE, {}, r"'priors' must map parameter kinds"),
        (
            BASE,
            {"ordinal": ["x1", "q"]},
            r"ordinal item\(s\) \['q'\] are not indicators of the model; the items are",
        ),
        (
            "---\nordinal: true\n---\n" + BASE,
            {},
            r"ordinal must be 'all', a comma-separated string or a list of item names; got True",
        ),
        ("---\nordinal: [1, 2]\n---\n" + BASE, {}, r"ordinal must be 'all'"),
    ],
)
def test_model_spec_errors(text, kwargs, pattern):
    with pytest.raises(ModelSpecError) as info:
        build_partable(text, **kwargs)
    assert re.search(pattern, str(info.value)), str(info.value)
    assert isinstance(info.value, BayesSORError)


def test_syntax_errors_pass_through():
    with pytest.raises(ModelSyntaxError):
        build_partable("F =~ x1 +")


def test_names_in_regressions_that_are_not_items_are_observed_variables():
    # lavaan treats them as observed (PROCESS-style models); they were errors before.
    pt = build_partable(BASE + "G ~ F + Q + F:Q\n")
    assert pt.observed_structural == ["Q"]
    assert ("G", "F", "Q") in pt.interactions
    only_observed = build_partable("M ~ X\nY ~ M + X\n")
    assert set(only_observed.observed_structural) == {"X", "M", "Y"}


# ---- small-variance priors (BSEM) ---------------------------------------------------------
HS = (MODELS / "holzinger_swineford.lav").read_text()


def _bsem(header: str, text: str = HS, **kwargs) -> ParTable:
    return build_partable(f"---\n{header}\n---\n{text}", **kwargs)


@pytest.mark.parametrize("identification", ["std.lv", "marker"])
def test_cross_loadings_add_every_missing_loading_after_the_users(identification):
    from bayes_sor.spec.partable import small_variance_parameters

    pt = _bsem("cross_loadings: normal(0,0.1)", identification=identification)
    added = small_variance_parameters(pt)
    assert len(added) == 3 * 6 and set(added.op) == {"=~"} and set(added.prior) == {"normal(0,0.1)"}
    assert ("visual", "x9") in set(zip(added.lhs, added.rhs, strict=True))
    assert not {("visual", "x1"), ("speed", "x9")} & set(zip(added.lhs, added.rhs, strict=True))
    first = rows(pt, "=~", "visual").iloc[0]
    # each factor's scale still comes from its own first item, never from a cross-loading
    assert first.rhs == "x1"
    if identification == "marker":
        assert first.free == 0 and (added.free > 0).all()
    else:
        assert first.prior == "halfnormal(10)"
    assert pt.indicators == [f"x{i}" for i in range(1, 10)] and pt.latents == [
        "visual",
        "textual",
        "speed",
    ]


def test_residual_covariances_prior_is_on_the_correlation():
    from bayes_sor.spec.partable import small_variance_parameters

    pt = _bsem("residual_covariances: normal(0,0.1)", BASE + "x1 ~~ x2\n")
    added = small_variance_parameters(pt)
    # 15 pairs of 6 items, less the one the model states (which keeps the default prior)
    assert len(added) == 14 and set(added.op) == {"~~"}
    assert set(added.prior) == {"beta(49.5,49.5)"}  # SD of 2 * beta(a, a) - 1 is 0.1
    stated = rows(pt, "~~", "x1", "x2")
    assert stated.prior.item() == DEFAULT_PRIORS["residual_covariances"]
    assert set(small_variance_parameters(_bsem("residual_covariances: beta(20,20)")).prior) == {
        "beta(20,20)"
    }


def test_small_variance_parameters_escape_the_counting_rule():
    # 2 items per factor, 4 items: 14 moments; cross-loadings and residual covariances
    # bring the free parameters to 4 + 4 + 4 + 4 + 1 + 6 = 23, identified by their priors alone;
    # the same parameters stated in the model are counted, and refused
    text = "F =~ x1 + x2\nG =~ y1 + y2\n"
    pt = _bsem("cross_loadings: normal(0,0.1)\nresidual_covariances: normal(0,0.1)", text)
    assert pt.n_free == 23
    with pytest.raises(ModelSpecError, match="free parameters"):
        build_partable(
            text + "x1 ~~ x2 + y1 + y2\nx2 ~~ y1 + y2\ny1 ~~ y2\nF =~ y1 + y2\nG =~ x1 + x2\n"
        )


def test_small_variance_rows_skip_observed_structural_variables():
    from bayes_sor.spec.partable import small_variance_parameters

    text = "F =~ x1 + x2 + x3\nG =~ y1 + y2 + y3\nG ~ F + age\n"
    added = small_variance_parameters(
        _bsem("cross_loadings: normal(0,0.1)\nresidual_covariances: normal(0,0.1)", text)
    )
    assert "age" not in set(added.lhs) | set(added.rhs)
    assert len(added[added.op == "=~"]) == 6 and len(added[added.op == "~~"]) == 15


def test_prior_scale_widens_small_variance_priors():
    from bayes_sor.spec.partable import small_variance_parameters

    pt = _bsem("cross_loadings: normal(0,0.1)", prior_scale=2)
    assert set(small_variance_parameters(pt).prior) == {"normal(0,0.2)"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("cross_loadings: normal(0,-1)", "non-positive scale"),
        ("cross_loadings: [1, 2]", "takes one prior"),
        ("residual_covariances: gamma(1,1)", "not a prior of a residual correlation"),
        ("residual_covariances: normal(0,2)", "s < 1"),
    ],
)
def test_bad_small_variance_options_are_one_clear_error(header, message):
    with pytest.raises(ModelSpecError, match=re.escape(message)):
        _bsem(header)


# ---- dummy-coded controls -------------------------------------------------------------------
CONTROLLED = BASE + "G ~ F + gender + age + edu\n"


def test_dummy_controls_replace_the_control_in_every_row():
    from bayes_sor.spec.partable import with_dummy_controls

    pt = build_partable(CONTROLLED)
    coded = with_dummy_controls(pt, {"gender": ["gender[male]"], "edu": ["edu[a]", "edu[b]"]})
    t = coded.table
    assert list(rows(coded, "~", "G").rhs) == ["F", "gender[male]", "age", "edu[a]", "edu[b]"]
    assert coded.observed_structural == ["gender[male]", "age", "edu[a]", "edu[b]"]
    assert coded.exogenous == ["F", "gender[male]", "age", "edu[a]", "edu[b]"]
    assert not {"gender", "edu"} & (set(t.lhs) | set(t.rhs))
    # every pair of exogenous variables has its correlation (one LKJ matrix), the dummies'
    # own pair included, and each dummy its variance and intercept
    exo = coded.exogenous
    pairs = t[(t.op == "~~") & (t.lhs != t.rhs)]
    assert {frozenset(p) for p in zip(pairs.lhs, pairs.rhs, strict=True)} == {
        frozenset((a, b)) for i, a in enumerate(exo) for b in exo[i + 1 :]
    }
    assert set(pairs.prior) == {DEFAULT_PRIORS["latent_correlations"]}
    for dummy in ("edu[a]", "edu[b]"):
        assert len(rows(coded, "~~", dummy, dummy)) == len(rows(coded, "~1", dummy)) == 1
    # edu's second dummy: its path, variance, intercept, correlations with F, gender[male],
    # age and edu[a]
    free = t.free[t.free > 0]
    assert sorted(free) == list(range(1, coded.n_free + 1)) and coded.n_free == pt.n_free + 7


def test_a_label_on_a_two_level_control_is_kept():
    from bayes_sor.spec.partable import with_dummy_controls

    pt = build_partable(BASE + "G ~ F + g*gender\ngap := 2*g\n")
    coded = with_dummy_controls(pt, {"gender": ["gender[male]"]})
    assert rows(coded, "~", "G", "gender[male]").label.item() == "g"
    assert coded.table.op.iloc[-1] == ":="


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (BASE + "G ~ F + e*edu\n", r"label 'e' on the control 'edu' .* remove the label"),
        (BASE + "edu ~ F\nG ~ edu\n", r"can only predict, not be the outcome"),
        (BASE + "G ~ F + edu + F:edu\n", r"interactions with a dummy-coded control"),
    ],
)
def test_bad_uses_of_a_text_control_are_one_clear_error(model, message):
    from bayes_sor.spec.partable import with_dummy_controls

    with pytest.raises(ModelSpecError, match=message):
        with_dummy_controls(build_partable(model), {"edu": ["edu[a]", "edu[b]"]})
