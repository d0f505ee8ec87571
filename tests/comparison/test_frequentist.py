"""The frequentist side against independent references.

ML SEM (semopy) against lavaan 0.6-14 for the lavaan tutorial models and the Hanoi survey, and
the composite / PROCESS approach against Hayes' PROCESS model 14 on his teams data. The
reference folder lives next to the project (``../shared/reference``); tests that need it skip
when it is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from paths import ROOT
from reference_data import REFERENCE, require_reference

from bayes_sor.comparison.composite import (
    baron_kenny,
    composite_scores,
    moderation,
    moderator_points,
    ols,
    process_model14,
)
from bayes_sor.comparison.ml_sem import DMC_METHOD, PRODUCT_METHOD, ml_sem, ml_sem_fit
from bayes_sor.errors import DataError, ModelSpecError
from bayes_sor.posterior.effects import effect_draws
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

#: An ML engine fitting the same model reproduces lavaan to this (README of the references).
ML_TOL = 1e-3
TEAMS = {"x": "dysfunc", "m": "negtone", "w": "negexp", "y": "perform"}
#: The author's published Hanoi SEM, reconstructed from the reference table: five 3-item
#: constructs, marker identification (first loadings 1), covariances among the four exogenous
#: latents, no mean structure (npar 40, df 80).
HANOI_SEM = """
PAR =~ PAR1 + PAR2 + PAR3
INT =~ INT1 + INT2 + INT3
HED =~ HED1 + HED2 + HED3
CON =~ CON1 + CON2 + CON3
URG =~ URG1 + URG2 + URG3
URG ~ PAR + INT + HED + CON
"""
#: The reference's latent moderated mediation, in bayes_sor syntax: the reference wrote the
#: product latent HXC by hand; ml_sem builds it from the interaction term.
HANOI_MODERATED = """
HED =~ HED1 + HED2 + HED3
CON =~ CON1 + CON2 + CON3
PAR =~ PAR1 + PAR2 + PAR3
URG =~ URG1 + URG2 + URG3
HED ~ PAR
URG ~ PAR + HED + CON + HED:CON
"""


def reference(relative: str) -> pd.DataFrame:
    """A reference CSV; a skip when the shared reference folder is absent (a failure in CI)."""
    require_reference()
    return pd.read_csv(REFERENCE / relative)


def model(name: str, identification: str):
    return build_partable((ROOT / "models" / f"{name}.lav").read_text(), identification)


def _symmetric(table: pd.DataFrame) -> pd.DataFrame:
    """(Co)variances keyed with lhs <= rhs, since lavaan and bayes_sor may order them apart."""
    table = table.copy()
    swap = (table.op == "~~") & (table.lhs > table.rhs)
    table.loc[swap, ["lhs", "rhs"]] = table.loc[swap, ["rhs", "lhs"]].to_numpy()
    return table


def compare(
    ours: pd.DataFrame, ref: pd.DataFrame, columns=("est", "se"), absent: tuple = ()
) -> pd.DataFrame:
    """Join on (lhs, op, rhs); every parameter of the reference must be matched, except the
    ``absent`` rows: zeros the reference states that the model here leaves out."""
    ref = _symmetric(ref[ref.op.isin(["=~", "~", "~~"])])
    ref = ref[[(r.lhs, r.op, r.rhs) not in absent for r in ref.itertuples()]]
    merged = ref.merge(
        _symmetric(ours), on=["lhs", "op", "rhs"], suffixes=("_ref", ""), validate="1:1"
    )
    assert len(merged) == len(ref), "rows of the lavaan table have no counterpart"
    for column in columns:
        np.testing.assert_allclose(
            merged[column], merged[f"{column}_ref"], atol=ML_TOL, err_msg=column
        )
    return merged


@pytest.fixture(scope="module")
def political_democracy() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "political_democracy.csv")


@pytest.fixture(scope="module")
def pd_fit(political_democracy) -> pd.DataFrame:
    return ml_sem(model("political_democracy", "marker"), political_democracy)


@pytest.fixture(scope="module")
def holzinger() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "holzinger_swineford.csv")


@pytest.fixture(scope="module")
def teams() -> pd.DataFrame:
    return reference("hayes/hayes_teams.csv")


@pytest.fixture(scope="module")
def hanoi() -> pd.DataFrame:
    return reference("hanoi/impulse_social_commerce_hanoi.csv")


# ---- shipped data ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("holzinger_swineford.csv", "holzinger_swineford_1939.csv"),
        ("political_democracy.csv", "political_democracy.csv"),
    ],
)
def test_shipped_data_hold_the_reference_numbers(ours, theirs):
    shipped = pd.read_csv(ROOT / "data" / ours)
    ref = reference(f"lavaan/{theirs}")
    pd.testing.assert_frame_equal(shipped, ref, check_dtype=False)


def test_shipped_data_are_semopy_copies():
    from semopy.examples import holzinger39, political_democracy

    for ours, source in [
        ("holzinger_swineford.csv", holzinger39),
        ("political_democracy.csv", political_democracy),
    ]:
        shipped = pd.read_csv(ROOT / "data" / ours)
        original = source.get_data().reset_index(drop=True)
        pd.testing.assert_frame_equal(shipped, original[shipped.columns], check_dtype=False)


# ---- ML SEM against lavaan -------------------------------------------------------------------
def test_political_democracy_reproduces_lavaan(pd_fit):
    ref = reference("lavaan/ref_politicaldemocracy_lavaan_ml.csv")
    compare(pd_fit, ref, ("est", "se", "std.all", "ci.lower", "ci.upper"))
    fit = pd_fit.attrs["fit"]
    lavaan_fit = (
        reference("lavaan/ref_politicaldemocracy_lavaan_ml_fit.csv").set_index("measure").value
    )
    for measure in ("chisq", "df", "cfi", "rmsea"):
        assert fit[measure] == pytest.approx(lavaan_fit[measure], abs=ML_TOL), measure


def test_political_democracy_indirect_effect(pd_fit):
    ref = reference("lavaan/ref_politicaldemocracy_lavaan_ml_indirect.csv").set_index("lhs")
    rows = pd_fit.set_index("lhs")
    enumerated = rows.loc["ind60 -> dem60 -> dem65"]
    defined = rows.loc["ind60_dem65_indirect"]
    assert enumerated.op == "indirect" and defined.op == ":=" and defined.rhs == "a*b"
    for row in (enumerated, defined):
        assert row.est == pytest.approx(ref.loc["indirect", "est"], abs=ML_TOL)  # 1.242
        # delta method, as lavaan
        assert row.se == pytest.approx(ref.loc["indirect", "se"], abs=ML_TOL)
        assert row["std.all"] == pytest.approx(ref.loc["indirect", "std.all"], abs=ML_TOL)
    total = rows.loc["ind60_dem65_total"]
    assert total.est == pytest.approx(ref.loc["total", "est"], abs=ML_TOL)  # 1.814
    assert total.se == pytest.approx(ref.loc["total", "se"], abs=ML_TOL)
    assert rows[rows.op == "total"].loc["ind60 -> dem65", "est"] == pytest.approx(total.est)


def test_intercepts_are_the_sample_means(pd_fit, political_democracy):
    means = pd_fit[pd_fit.op == "~1"].set_index("lhs")
    np.testing.assert_allclose(means.est, political_democracy[means.index].mean(), rtol=1e-12)
    assert (means.se > 0).all()


@pytest.mark.parametrize(
    ("identification", "ref_file"),
    [
        ("std.lv", "lavaan/ref_holzinger_cfa_lavaan_ml_stdlv.csv"),
        ("marker", "lavaan/ref_holzinger_cfa_lavaan_ml.csv"),
    ],
)
def test_holzinger_cfa_reproduces_lavaan(holzinger, identification, ref_file):
    ref = reference(ref_file)
    ours = ml_sem(model("holzinger_swineford", identification), holzinger)
    merged = compare(ours, ref, ("est", "se", "std.all"))
    if identification == "std.lv":
        variances = merged[
            (merged.op == "~~")
            & merged.lhs.isin(["visual", "textual", "speed"])
            & (merged.lhs == merged.rhs)
        ]
        assert (variances.est == 1).all() and (variances.se == 0).all()
    assert ours.attrs["fit"]["chisq"] == pytest.approx(85.306, abs=ML_TOL)
    assert ours.attrs["fit"]["df"] == 24


def test_hanoi_published_sem(hanoi):
    ref = reference("hanoi/ref_impulse_hanoi_sem_lavaan_ml.csv")
    ours = ml_sem(build_partable(HANOI_SEM, "marker"), hanoi)
    compare(ours, ref, ("est", "se", "std.all"))
    paths = ours[ours.op == "~"].set_index("rhs").est
    published = {"PAR": 1.230, "INT": -0.319, "HED": 0.370, "CON": 0.211}
    for cause, value in published.items():
        assert paths[cause] == pytest.approx(value, abs=1e-3)
    fit = ours.attrs["fit"]
    assert fit["chisq"] == pytest.approx(189.193, abs=ML_TOL) and fit["df"] == 80


def test_latent_interaction_by_double_mean_centred_product_indicators(hanoi):
    ref = reference("hanoi/ref_impulse_hanoi_latent_moderated_mediation_dmc_lavaan_ml.csv")
    ref = ref.replace({"HXC": "HED:CON"})
    ours = ml_sem(build_partable(HANOI_MODERATED, "marker"), hanoi)
    # HED (endogenous) and CON (exogenous) have no covariance parameter here; lavaan lists it
    # as a fixed zero
    absent = (("CON", "~~", "HED"),)
    merged = compare(ours, ref, ("est", "se", "std.all"), absent)
    assert merged.set_index(["lhs", "op", "rhs"]).loc[("URG", "~", "HED:CON"), "est"] == (
        pytest.approx(0.105, abs=1e-3)
    )
    assert ours.attrs["method"] == DMC_METHOD and (ours.method == DMC_METHOD).all()
    assert ours.attrs["fit"]["chisq"] == pytest.approx(189.768, abs=ML_TOL)
    indirect = ours.set_index("lhs").loc["PAR -> HED -> URG"]
    assert indirect.est == pytest.approx(1.048042 * 0.288059, abs=ML_TOL)


def test_observed_variables_enter_semopy_as_observed_variables(teams):
    """The table's 'v =~ 1*v' rows (no residual variance) are not written for semopy, which
    takes v as the observed variable it is; ML of this recursive model (free covariances of
    the observed exogenous variables) gives each equation's OLS paths."""
    pt = build_partable("negtone ~ dysfunc\nperform ~ dysfunc + negtone + negexp")
    table = ml_sem(pt, teams).set_index(["lhs", "op", "rhs"])
    assert table.loc[("negtone", "~", "dysfunc"), "est"] == pytest.approx(
        ols(teams.negtone, teams[["dysfunc"]]).coef["dysfunc"], abs=ML_TOL
    )
    paths = ols(teams.perform, teams[["dysfunc", "negtone", "negexp"]]).coef
    for term in ("dysfunc", "negtone", "negexp"):
        assert table.loc[("perform", "~", term), "est"] == pytest.approx(paths[term], abs=ML_TOL)
    # an observed variable has no measurement part: its loading is the fixed 1, exactly
    assert table.loc[("negexp", "=~", "negexp"), ["est", "se"]].tolist() == [1.0, 0.0]
    # chi-square df = 10 moments - 9 parameters (paths, variances, 1 exogenous covariance)
    assert table.attrs["fit"]["df"] == 1


def test_ml_of_process_model14_with_observed_variables_matches_process(teams):
    """hayes_teams.lav (observed X, M, W, Y): the product of two observed variables is one
    observed centred column, so ML gives PROCESS's OLS paths and, through the effects layer
    at W = -0.531 / -0.060 / 0.600 (``moderator_values``, raw W units), its conditional
    indirect effects and index of moderated mediation (ML_TOL: the same estimator)."""
    ref = reference("hayes/ref_teams_process_model14_ols_bootstrap.csv").set_index("effect")
    text = (ROOT / "models" / "hayes_teams.lav").read_text()
    pt = build_partable("---\nmoderator_values: {negexp: [-0.531, -0.060, 0.600]}\n---\n" + text)
    fit = ml_sem_fit(pt, teams, bootstrap=20, seed=1)
    table = fit.table.set_index(["lhs", "op", "rhs"])
    assert fit.table.attrs["method"] == PRODUCT_METHOD
    for (lhs, rhs), effect in {
        ("negtone", "dysfunc"): "negtone: dysfunc",
        ("perform", "dysfunc"): "perform: dysfunc",
        ("perform", "negtone:negexp"): "perform: negtone:negexp",
    }.items():
        assert table.loc[(lhs, "~", rhs), "est"] == pytest.approx(ref.estimate[effect], abs=ML_TOL)
    rows = fit.model_rows(fit.rows)
    effects = {
        (e.kind, e.moderator_value): float(e.draws)
        for e in effect_draws(pt, representation(pt), rows)
    }
    for label, effect in {
        "negexp=-0.531": "cond_ind_W-0.531",
        "negexp=-0.060": "cond_ind_W-0.06",
        "negexp=0.600": "cond_ind_W0.6",
    }.items():
        assert effects["conditional_indirect", label] == pytest.approx(
            ref.estimate[effect], abs=ML_TOL
        )
    assert effects["index_moderated_mediation", "negexp"] == pytest.approx(
        ref.estimate["index_modmed"], abs=ML_TOL
    )
    # observed variables have no residual matrix to be non-positive-definite
    assert fit.table.attrs["bootstrap"]["inadmissible"] == 0


def test_ml_rejects_what_it_cannot_fit(political_democracy):
    with pytest.raises(ModelSpecError, match="ordinal"):
        ml_sem(build_partable("f =~ y1 + y2 + y3", "marker", ordinal="all"), political_democracy)
    with pytest.raises(DataError, match="z9"):
        ml_sem(build_partable("f =~ y1 + y2 + z9", "marker"), political_democracy)


# ---- bootstrap -------------------------------------------------------------------------------
BOOT_COLUMNS = ["se", "ci.lower", "ci.upper"]


def test_ml_bootstrap_is_seeded_and_independent_of_workers(political_democracy):
    pt = model("political_democracy", "marker")
    first = ml_sem(pt, political_democracy, bootstrap=12, seed=7)
    again = ml_sem(pt, political_democracy, bootstrap=12, seed=7, workers=2)
    other = ml_sem(pt, political_democracy, bootstrap=12, seed=8)
    pd.testing.assert_frame_equal(first[BOOT_COLUMNS], again[BOOT_COLUMNS])
    free = first.index[(first.se > 0)]
    assert not np.allclose(first.loc[free, "ci.upper"], other.loc[free, "ci.upper"])
    info = first.attrs["bootstrap"]
    assert info["B"] == 12 and info["kept"] + info["failed"] == 12
    assert 0 <= info["inadmissible"] <= info["kept"]
    # the point estimates stay the ML ones; only the intervals come from the resamples
    np.testing.assert_allclose(first.est, ml_sem(pt, political_democracy).est, atol=1e-8)


@pytest.mark.slow
def test_ml_bootstrap_percentile_interval_matches_lavaan(political_democracy):
    ref = reference("lavaan/ref_politicaldemocracy_lavaan_ml_indirect_boot2000_perc.csv")
    ref = ref.set_index("lhs").loc["indirect"]
    fit = ml_sem(
        model("political_democracy", "marker"),
        political_democracy,
        bootstrap=2000,
        seed=2024,
        workers=2,
    )
    ours = fit.set_index("lhs").loc["ind60 -> dem60 -> dem65"]
    # Different resamples (R's vs numpy's generator): a 2.5 % / 97.5 % quantile of B = 2000
    # draws with SD 0.35 has Monte Carlo SD about 0.02-0.03 (the upper tail is long), so two
    # independent runs differ by up to about 0.1 at 2.5 SD; the bootstrap SE is far steadier.
    assert ours["ci.lower"] == pytest.approx(ref["ci.lower"], abs=0.1)  # 0.573
    assert ours["ci.upper"] == pytest.approx(ref["ci.upper"], abs=0.1)  # 1.975
    assert ours.se == pytest.approx(ref.se, abs=0.03)
    # lavaan keeps inadmissible resamples and counted 640 of 2000 (dem65's residual variance
    # is 0.17 with SE 0.21); the binomial SD of that share is 0.01
    info = fit.attrs["bootstrap"]
    assert info["failed"] <= 20
    assert info["inadmissible"] / info["kept"] == pytest.approx(640 / 2000, abs=0.05)


# ---- composites, OLS and PROCESS ---------------------------------------------------------------
def test_composite_scores_are_item_means(holzinger):
    scores = composite_scores(model("holzinger_swineford", "marker"), holzinger)
    assert list(scores.columns) == ["visual", "textual", "speed"]
    np.testing.assert_allclose(scores.textual, holzinger[["x4", "x5", "x6"]].mean(axis=1))
    with pytest.raises(DataError, match="x9"):
        composite_scores(model("holzinger_swineford", "marker"), holzinger.drop(columns="x9"))


def test_ols_matches_process_regressions(teams):
    ref = reference("hayes/ref_teams_process_model14_ols_bootstrap.csv").set_index("effect")
    out = process_model14(teams, **TEAMS, boot=10, seed=1)
    ours = out.set_index("effect")
    ols_rows = ref.index[ref.method.str.startswith("OLS")]
    for column in ("estimate", "se", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(
            ours.loc[ols_rows, column], ref.loc[ols_rows, column], atol=1e-3, err_msg=column
        )
    direct = ols(teams.negtone, teams[["dysfunc"]])
    assert direct.r2 == pytest.approx(0.192200, abs=1e-6) and direct.df_resid == 58
    assert direct.table.loc["dysfunc", "beta"] == pytest.approx(
        np.corrcoef(teams.dysfunc, teams.negtone)[0, 1]
    )


def test_default_moderator_values_are_process_percentiles(teams):
    np.testing.assert_allclose(moderator_points(teams.negexp), [-0.531, -0.060, 0.600], atol=1e-3)


def test_process_model14_bootstrap_matches_hayes(teams):
    ref = reference("hayes/ref_teams_process_model14_ols_bootstrap.csv").set_index("effect")
    ours = process_model14(
        teams, **TEAMS, boot=5000, seed=100770, w_values=[-0.531, -0.060, 0.600]
    ).set_index("effect")
    effects = ["cond_ind_W-0.531", "cond_ind_W-0.06", "cond_ind_W0.6", "index_modmed"]
    # point estimates are exact; bootstrap SEs and bounds differ by Monte Carlo error
    # (B = 5000, resampled by numpy instead of R: about 0.005-0.01 for these bounds)
    np.testing.assert_allclose(
        ours.loc[effects, "estimate"], ref.loc[effects, "estimate"], atol=1e-6
    )
    for column in ("se", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(
            ours.loc[effects, column], ref.loc[effects, column], atol=0.03, err_msg=column
        )
    assert ours.loc["index_modmed", "ci_upper"] < 0  # PROCESS: moderated mediation


def test_process_bootstrap_is_seeded(teams):
    a = process_model14(teams, **TEAMS, boot=500, seed=3)
    b = process_model14(teams, **TEAMS, boot=500, seed=3)
    c = process_model14(teams, **TEAMS, boot=500, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.ci_lower.dropna(), c.ci_lower.dropna())


def test_baron_kenny_steps(teams):
    steps = baron_kenny(teams, "dysfunc", "negtone", "perform").set_index("path")
    assert steps.loc["a", "est"] == pytest.approx(0.619753, abs=1e-6)  # PROCESS's a path
    # OLS decomposes the total effect exactly: c = c' + a b
    assert steps.loc["c", "est"] == pytest.approx(steps.loc["c'", "est"] + steps.loc["a*b", "est"])
    sobel = np.hypot(
        steps.loc["a", "est"] * steps.loc["b", "se"], steps.loc["b", "est"] * steps.loc["a", "se"]
    )
    assert steps.loc["a*b", "se"] == pytest.approx(sobel)


def test_moderation_centres_before_multiplying(teams):
    fit = moderation(teams, "negtone", "negexp", "perform", controls=["dysfunc"])
    ref = reference("hayes/ref_teams_process_model14_ols_bootstrap.csv").set_index("effect")
    # centring changes the lower-order terms, never the product's coefficient
    assert fit.coef["negtone:negexp"] == pytest.approx(
        ref.loc["perform: negtone:negexp", "estimate"], abs=1e-6
    )
    conditional = (
        ref.loc["perform: negtone", "estimate"]
        + ref.loc["perform: negtone:negexp", "estimate"] * teams.negexp.mean()
    )
    assert fit.coef["negtone"] == pytest.approx(conditional, abs=1e-6)
    assert fit.r2 == pytest.approx(ref.loc["perform: R2", "estimate"], abs=1e-6)
