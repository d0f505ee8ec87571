"""Effects computed from parameter draws against hand-computed values."""

import numpy as np
import pytest
from fakes import truth
from sem_models import MODERATED

from bayes_sor.errors import ModelSpecError, ModelSyntaxError
from bayes_sor.posterior.effects import (
    effect_draws,
    effects_dataarray,
    effects_table,
    parse_moderator_values,
    value_label,
)
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable
from bayes_sor.spec.syntax import check_moderator_values


def _par(partable, values: dict[str, float], draws: int = 3) -> np.ndarray:
    """Parameter draws (1 chain) with given values, fixed rows at their value, others 0.5."""
    scale = np.linspace(1.0, 1.2, draws)[:, None]
    free = partable.parameters.free.to_numpy() > 0
    return (truth(partable, values, free=0.5) * np.where(free, scale, 1.0))[None]


def _find(effects, effect, kind, moderator=""):
    hits = [
        e for e in effects if (e.effect, e.kind, e.moderator_value) == (effect, kind, moderator)
    ]
    assert len(hits) == 1, (effect, kind, moderator, [(e.effect, e.kind) for e in effects])
    return hits[0].draws


def test_moderated_mediation_effects_match_hand_computation():
    pt = build_partable(MODERATED)
    rep = representation(pt)
    par = _par(pt, {"M~X": 0.5, "Y~X": 0.2, "Y~M": 0.4, "Y~W": 0.1, "Y~M:W": 0.3})
    names = pt.names
    a, b, c, d = (par[..., names.index(n)] for n in ("M~X", "Y~M", "Y~X", "Y~M:W"))
    quantiles = np.broadcast_to(np.array([-0.9, 0.05, 1.1]), (*par.shape[:-1], 1, 3))
    effects = effect_draws(pt, rep, par, quantiles)
    np.testing.assert_allclose(_find(effects, "X -> M -> Y", "indirect"), a * b)
    np.testing.assert_allclose(_find(effects, "X -> Y", "direct"), c)
    np.testing.assert_allclose(_find(effects, "X -> Y", "total"), c + a * b)
    np.testing.assert_allclose(
        _find(effects, "X -> M -> Y", "index_moderated_mediation", "W"), a * d
    )
    # W is exogenous with variance fixed to 1 under std.lv, so 1 SD = 1.
    np.testing.assert_allclose(
        _find(effects, "X -> M -> Y", "conditional_indirect", "W=+1SD"), a * (b + d)
    )
    np.testing.assert_allclose(
        _find(effects, "X -> M -> Y", "conditional_indirect", "W=p16"), a * (b - 0.9 * d)
    )
    np.testing.assert_allclose(_find(effects, "ab", "defined"), a * b)
    np.testing.assert_allclose(_find(effects, "ab2", "defined"), 2 * a * b)


def test_serial_and_parallel_paths_are_all_enumerated():
    pt = build_partable("""
    X =~ x1 + x2 + x3
    M1 =~ m1 + m2 + m3
    M2 =~ n1 + n2 + n3
    Y =~ y1 + y2 + y3
    M1 ~ X
    M2 ~ X + M1
    Y ~ M1 + M2
    """)
    rep = representation(pt)
    values = {"M1~X": 0.5, "M2~X": 0.3, "M2~M1": 0.2, "Y~M1": 0.4, "Y~M2": 0.6}
    par = _par(pt, values, draws=1)
    effects = effect_draws(pt, rep, par)
    indirect = {
        e.effect: float(e.draws.squeeze())
        for e in effects
        if e.kind == "indirect" and e.effect.startswith("X") and e.effect.endswith("Y")
    }
    assert indirect == pytest.approx(
        {"X -> M1 -> Y": 0.2, "X -> M2 -> Y": 0.18, "X -> M1 -> M2 -> Y": 0.06}
    )
    total = _find(effects, "X -> Y", "total_indirect")
    assert float(total.squeeze()) == pytest.approx(0.44)
    assert not [e for e in effects if e.effect == "X -> Y" and e.kind == "direct"]


def test_effects_table_has_the_documented_columns_and_intervals():
    pt = build_partable(MODERATED)
    rng = np.random.default_rng(0)
    par = _par(pt, {}, draws=1) + rng.normal(0, 0.05, (2, 200, len(pt.names)))
    table = effects_table(effects_dataarray(effect_draws(pt, representation(pt), par)))
    assert list(table.columns) == [
        "effect",
        "kind",
        "moderator_value",
        "mean",
        "median",
        "sd",
        "ci.lower",
        "ci.upper",
        "p_positive",
    ]
    assert (table["ci.lower"] <= table["mean"]).all() and (table["mean"] <= table["ci.upper"]).all()
    assert set(table.kind) == {
        "direct",
        "indirect",
        "total_indirect",
        "total",
        "conditional_indirect",
        "index_moderated_mediation",
        "defined",
    }


def test_a_model_without_paths_has_an_empty_effects_table():
    pt = build_partable("F =~ y1 + y2 + y3\nG =~ z1 + z2 + z3")
    par = _par(pt, {}, draws=1) + np.zeros((2, 50, len(pt.names)))
    effects = effects_dataarray(effect_draws(pt, representation(pt), par), sample_shape=(2, 50))
    assert effects.shape == (2, 50, 0)
    assert effects_table(effects).empty


# ---- explicit moderator values ------------------------------------------------------------
HEADER = "---\nmoderator_values: {W: [-0.5, 0.6]}\n---\n"


def test_explicit_values_of_a_latent_moderator_are_on_its_scale():
    pt = build_partable(HEADER + MODERATED)
    assert pt.options["moderator_values"] == {"W": [-0.5, 0.6]}
    par = _par(pt, {"M~X": 0.5, "Y~M": 0.4, "Y~M:W": 0.3})
    a, b, d = (par[..., pt.names.index(n)] for n in ("M~X", "Y~M", "Y~M:W"))
    effects = effect_draws(pt, representation(pt), par)
    for value, label in ((-0.5, "W=-0.500"), (0.6, "W=0.600")):
        np.testing.assert_allclose(
            _find(effects, "X -> M -> Y", "conditional_indirect", label), a * (b + d * value)
        )
    # the SD and percentile points are still there
    _find(effects, "X -> M -> Y", "conditional_indirect", "W=+1SD")
    _find(effects, "X -> M -> Y", "conditional_indirect", "W=p84")


def test_explicit_values_of_an_observed_moderator_are_in_raw_data_units(root):
    """The structural model uses an observed W as its deviation from its intercept, so the
    effect at a raw value v is a (b + d (v - nu_W)): PROCESS's probe at W = v."""
    text = (root / "models" / "hayes_teams.lav").read_text()
    pt = build_partable("---\nmoderator_values: {negexp: [-0.531, 0.6]}\n---\n" + text)
    par = _par(
        pt,
        {
            "negtone~dysfunc": 0.6,
            "perform~negtone": -0.4,
            "perform~negtone:negexp": -0.5,
            "negexp~1": 0.2,
        },
    )
    a, b, d, nu = (
        par[..., pt.names.index(n)]
        for n in ("negtone~dysfunc", "perform~negtone", "perform~negtone:negexp", "negexp~1")
    )
    effects = effect_draws(pt, representation(pt), par)
    path = "dysfunc -> negtone -> perform"
    np.testing.assert_allclose(
        _find(effects, path, "conditional_indirect", "negexp=-0.531"), a * (b + d * (-0.531 - nu))
    )
    np.testing.assert_allclose(
        _find(effects, path, "conditional_indirect", "negexp=0.600"), a * (b + d * (0.6 - nu))
    )


def test_value_labels_keep_three_decimals_unless_more_are_needed():
    assert value_label("W", 0.6) == "W=0.600"
    assert value_label("W", -0.06) == "W=-0.060"
    assert value_label("W", 2.0e-5) == "W=2e-05"


def test_moderator_values_from_the_command_line():
    assert parse_moderator_values(["W=-0.531,-0.060,0.600", " V = 1"]) == {
        "W": [-0.531, -0.06, 0.6],
        "V": [1.0],
    }
    for bad in ("W", "W=", "W=a,b", "=1,2"):
        with pytest.raises(ModelSpecError, match=r"W=-0\.5,0,0\.5"):
            parse_moderator_values([bad])


def test_bad_moderator_values_are_clear_errors():
    with pytest.raises(ModelSyntaxError, match=r"line 2.*moderator_values of 'W' must be"):
        build_partable("---\nmoderator_values: {W: [low, high]}\n---\n" + MODERATED)
    with pytest.raises(ModelSyntaxError, match=r"line 3.*must map each moderator"):
        build_partable("---\nscale: 1-7\nmoderator_values: [1, 2]\n---\n" + MODERATED)
    pt = build_partable("---\nmoderator_values: {M: [1]}\n---\n" + MODERATED)
    with pytest.raises(ModelSpecError, match=r"\['M'\], which moderate no path.*\['W'\]"):
        effect_draws(pt, representation(pt), _par(pt, {}))
    with pytest.raises(ModelSpecError, match="finite numbers"):
        check_moderator_values({"W": [float("nan")]})


def test_cli_rejects_bad_moderator_values_before_sampling(root, tmp_path, capsys):
    from bayes_sor.cli.main import main

    model, data = root / "models" / "hayes_teams.lav", tmp_path / "teams.csv"
    data.write_text("dysfunc,negtone,negexp,perform\n" + "0,0,0,0\n1,2,1,0\n" * 5)
    for values, message in (
        ("negexp", "cannot read --moderator-values 'negexp'"),
        ("dysfunc=1", "moderator_values names ['dysfunc']"),
    ):
        code = main(
            [
                "fit",
                str(model),
                "--data",
                str(data),
                "--out",
                str(tmp_path / "run"),
                "--moderator-values",
                values,
            ]
        )
        assert code == 2 and message in capsys.readouterr().err


def test_effects_per_group_and_their_differences():
    """Two groups with their own a paths (c(a1, a2)) and one shared b: each group's indirect
    effect is its a times b, the difference row is a2 b - a1 b with P(difference > 0) in
    effects.csv, and ':=' uses the groups' labels."""
    text = "M =~ m1 + m2 + m3\nY =~ y1 + y2 + y3\nX =~ x1 + x2 + x3\n"
    text += "M ~ c(a1, a2)*X\nY ~ b*M\nda := a2 - a1\n"
    pt = with_groups(build_partable(text), ["A", "B"])
    values = {"M~X": 0.3, "Y~M": 0.5, "M~X.g2": 0.8}
    par = np.stack([_par(pt, values)[0], _par(pt, values)[0] + 0.01])  # 2 chains x 3 draws
    names = pt.names
    effects = effect_draws(pt, representation(pt), par)

    def find(kind, effect, group):
        hits = [e for e in effects if (e.kind, e.effect, e.group) == (kind, effect, group)]
        assert len(hits) == 1
        return hits[0].draws

    a1, a2 = par[..., names.index("M~X")], par[..., names.index("M~X.g2")]
    b, b2 = par[..., names.index("Y~M")], par[..., names.index("Y~M.g2")]
    np.testing.assert_array_equal(b, b2)  # one label: one parameter in both groups
    path = "X -> M -> Y"
    np.testing.assert_allclose(find("indirect", path, "A"), a1 * b)
    np.testing.assert_allclose(find("indirect", path, "B"), a2 * b)
    np.testing.assert_allclose(find("indirect", path, "B - A"), (a2 - a1) * b)
    np.testing.assert_allclose(find("direct", "X -> M", "B - A"), a2 - a1)
    np.testing.assert_allclose(find("defined", "da", ""), a2 - a1)
    table = effects_table(effects_dataarray(effects))
    assert list(table.columns[:4]) == ["effect", "kind", "moderator_value", "group"]
    row = table[(table.kind == "indirect") & (table.group == "B - A")].iloc[0]
    assert row.p_positive == 1.0 and row["mean"] > 0.2
    assert set(table.group) == {"A", "B", "B - A", ""}


def test_conditional_effects_per_group_use_each_groups_moderator_percentiles_and_mean():
    """A later group's conditional indirect effects: at its own percentiles of the moderator's
    scores (the conditional likelihood's ``moderator_quantiles`` per group), and at its own
    mean +-1 SD of the moderator (its latent mean is free when the intercepts are equal)."""
    text = "X =~ x1 + x2 + x3\nM =~ m1 + m2 + m3\nW =~ w1 + w2 + w3\nY =~ y1 + y2 + y3\n"
    text += "M ~ X\nY ~ X + M + W + c(d1, d2)*M:W\n"
    pt = with_groups(build_partable(text), ["A", "B"], ["loadings", "intercepts"])
    values = {"W~1.g2": 0.5, "W~~W.g2": 2.25, "Y~M:W": 0.2, "Y~M:W.g2": 0.4}
    par = _par(pt, values, draws=1)
    quantiles = np.array([[-1.0, 0.0, 1.0], [0.1, 0.5, 2.0]]).reshape(1, 1, 2, 1, 3)
    effects = effect_draws(pt, representation(pt), par, quantiles)

    def conditional(moderator, group):
        hits = [
            e
            for e in effects
            if (e.kind, e.effect, e.moderator_value, e.group)
            == ("conditional_indirect", "X -> M -> Y", moderator, group)
        ]
        assert len(hits) == 1
        return hits[0].draws[0, 0]

    def value(name):
        return par[0, 0, pt.names.index(name)]

    a, b = value("M~X.g2"), value("Y~M.g2")
    assert conditional("W=p16", "B") == pytest.approx(a * (b + 0.4 * 0.1))
    assert conditional("W=p84", "B") == pytest.approx(a * (b + 0.4 * 2.0))
    assert conditional("W=+1SD", "B") == pytest.approx(a * (b + 0.4 * (0.5 + 1.5)))
    assert conditional("W=p16", "A") == pytest.approx(value("M~X") * (value("Y~M") - 0.2))
    assert conditional("W=+1SD", "A") == pytest.approx(value("M~X") * (value("Y~M") + 0.2))
