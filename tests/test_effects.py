"""Effects computed from parameter draws against hand-computed values."""

import numpy as np
import pytest
from sem_models import MODERATED

from bayes_sor.effects import effect_draws, effects_dataarray, effects_table
from bayes_sor.matrices import representation
from bayes_sor.partable import build_partable


def _par(partable, values: dict[str, float], draws: int = 3) -> np.ndarray:
    """Parameter draws (1 chain) with given values, fixed rows at their value, others 0.5."""
    params = partable.parameters.reset_index(drop=True)
    base = np.array([values.get(n, r.value if r.free == 0 else 0.5)
                     for n, r in zip(partable.names, params.itertuples(), strict=True)])
    scale = np.linspace(1.0, 1.2, draws)[:, None]
    return (base * np.where(params.free.to_numpy() > 0, scale, 1.0))[None]


def _find(effects, effect, kind, moderator=""):
    hits = [e for e in effects if (e.effect, e.kind, e.moderator_value) == (effect, kind,
                                                                              moderator)]
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
    np.testing.assert_allclose(_find(effects, "X -> M -> Y", "index_moderated_mediation", "W"),
                               a * d)
    # W is exogenous with variance fixed to 1 under std.lv, so 1 SD = 1.
    np.testing.assert_allclose(
        _find(effects, "X -> M -> Y", "conditional_indirect", "W=+1SD"), a * (b + d))
    np.testing.assert_allclose(
        _find(effects, "X -> M -> Y", "conditional_indirect", "W=p16"), a * (b - 0.9 * d))
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
    indirect = {e.effect: float(e.draws.squeeze()) for e in effects
                if e.kind == "indirect" and e.effect.startswith("X") and e.effect.endswith("Y")}
    assert indirect == pytest.approx({"X -> M1 -> Y": 0.2, "X -> M2 -> Y": 0.18,
                                      "X -> M1 -> M2 -> Y": 0.06})
    total = _find(effects, "X -> Y", "total_indirect")
    assert float(total.squeeze()) == pytest.approx(0.44)
    assert not [e for e in effects if e.effect == "X -> Y" and e.kind == "direct"]


def test_effects_table_has_the_documented_columns_and_intervals():
    pt = build_partable(MODERATED)
    rng = np.random.default_rng(0)
    par = _par(pt, {}, draws=1) + rng.normal(0, 0.05, (2, 200, len(pt.names)))
    table = effects_table(effects_dataarray(effect_draws(pt, representation(pt), par)))
    assert list(table.columns) == ["effect", "kind", "moderator_value", "mean", "median", "sd",
                                   "ci.lower", "ci.upper", "p_positive"]
    assert (table["ci.lower"] <= table["mean"]).all() and (table["mean"] <= table["ci.upper"]).all()
    assert set(table.kind) == {"direct", "indirect", "total_indirect", "total",
                               "conditional_indirect", "index_moderated_mediation", "defined"}


def test_a_model_without_paths_has_an_empty_effects_table():
    pt = build_partable("F =~ y1 + y2 + y3\nG =~ z1 + z2 + z3")
    par = _par(pt, {}, draws=1) + np.zeros((2, 50, len(pt.names)))
    effects = effects_dataarray(effect_draws(pt, representation(pt), par), sample_shape=(2, 50))
    assert effects.shape == (2, 50, 0)
    assert effects_table(effects).empty
