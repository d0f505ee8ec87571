"""The conditional likelihood of multiple groups: each respondent under its own group's
parameters, checked against each group's one-group conditional log density."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from model_points import jittered_point, value_function
from pytensor.compile.mode import Mode
from pytensor.graph.basic import applys_between
from pytensor.tensor.math import Dot
from pytensor.tensor.subtensor import AdvancedSubtensor

from bayes_sor.data.categories import add_ordinal_thresholds
from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import pymc_model
from bayes_sor.model.latent import is_reflected, raw_latent_names, reflect
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.partable import ParTable, build_partable

INTERACTION = """
X =~ x1 + x2 + x3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
Y ~ X + W + X:W
"""

ORDINAL = "F =~ y1 + y2 + y3 + y4"

#: the Python linker: these tests evaluate each graph once or twice, compiling it costs more
FAST = Mode(linker="py", optimizer="fast_compile")


def _groups(n: int) -> np.ndarray:
    """Two groups interleaved, so a gather in the wrong order cannot pass."""
    return np.array(["a", "b", "b"] * (n // 3) + ["a"] * (n % 3))


def _one_group(grouped: ParTable, par: np.ndarray, g: int) -> ParTable:
    """Group ``g``'s rows as a one-group table, every parameter fixed at its value in
    ``par`` (latent means included)."""
    table = grouped.table.assign(value=np.concatenate([par, np.zeros(len(grouped.defined))]))
    rows = table[table.group == g].drop(columns="group").reset_index(drop=True)
    rows = rows.assign(free=0, prior="")
    options = {k: v for k, v in grouped.options.items() if k != "group_labels"}
    return ParTable(rows, options)


def _terms(model) -> list:
    """The conditional log density's terms: items, latent scores, ordinal potentials."""
    raw = [model[name] for name in raw_latent_names(model)]
    return model.observed_RVs + raw


def _density(model, point: dict) -> float:
    # a grouped model's centred exogenous scores and observed exogenous variables are
    # Potentials (each group's factor dense); the parameters' priors are not compared
    potentials = [p for p in model.potentials if not p.name.startswith("centred_prior")]
    terms = [model.logp(vars=_terms(model), sum=True)]
    outputs = model.replace_rvs_by_values(terms + potentials)
    fn = model.compile_fn(
        sum(outputs), inputs=model.value_vars, on_unused_input="ignore", mode=FAST
    )
    return float(fn(point))


def _sum_over_groups(grouped: ParTable, data: pd.DataFrame, groups, latent_scores) -> tuple:
    """(the grouped model's conditional log density, the sum of each group's one-group one)
    at a jittered point of the grouped model."""
    model = pymc_model(grouped, data, groups=groups, latent_scores=latent_scores).model
    point = jittered_point(model, 4)
    (par,) = value_function(model, [model["par"]], mode=FAST)(point)
    total = 0.0
    for g, label in enumerate(grouped.groups, start=1):
        rows = groups == label
        one = pymc_model(
            _one_group(grouped, par, g),
            data[rows].reset_index(drop=True),
            likelihood="conditional",
            latent_scores=latent_scores,
        ).model
        assert set(one.initial_point()) == set(raw_latent_names(one))  # parameters fixed
        # each model's raw variables: the scores, reflected where that model reflects them
        scores = {k: reflect(v) if is_reflected(k, True) else v for k, v in point.items()}
        total += _density(one, {k: reflect(scores[k][rows]) for k in one.initial_point()})
    return _density(model, point), total


@pytest.mark.parametrize("latent_scores", ["non-centred", "centred", ["X", "Y"]])
def test_grouped_interaction_density_is_the_sum_of_each_groups_one_group_density(latent_scores):
    pt = build_partable(INTERACTION)
    rng = np.random.default_rng(5)
    data = pd.DataFrame(rng.normal(size=(31, 9)), columns=pt.indicators)
    data.iloc[3, 4] = np.nan  # an unanswered cell: only the answered ones count
    groups = _groups(len(data))
    grouped = with_groups(pt, ["a", "b"], ["loadings", "intercepts"])
    t = grouped.table
    assert (t[(t.group == 2) & (t.lhs == "X") & (t.op == "~1")].free > 0).all()  # alpha free
    density, expected = _sum_over_groups(grouped, data, groups, latent_scores)
    assert density == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("latent_scores", ["centred", ["Y"]])
def test_grouped_density_with_an_observed_exogenous_variable_is_the_sum_over_groups(
    latent_scores,
):
    """An observed exogenous x: its data's density and the latents' scores given it, per
    group (each group's exogenous factor)."""
    pt = build_partable(INTERACTION.replace("Y ~ X + W + X:W", "Y ~ X + W + x + X:W"))
    rng = np.random.default_rng(8)
    data = pd.DataFrame(rng.normal(size=(28, 10)), columns=pt.indicators)
    groups = _groups(len(data))
    grouped = with_groups(pt, ["a", "b"], ["loadings"])
    density, expected = _sum_over_groups(grouped, data, groups, latent_scores)
    assert density == pytest.approx(expected, rel=1e-9)


def _ordinal(n: int = 45, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    latent = 0.9 * rng.normal(size=n)[:, None] + rng.normal(size=(n, 4))
    return pd.DataFrame(1 + np.digitize(latent, [-0.8, 0.0, 0.9]), columns=["y1", "y2", "y3", "y4"])


def _ordinal_grouped(data: pd.DataFrame, equal: list[str], partial=()) -> ParTable:
    pt = build_partable(ORDINAL, ordinal="all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt = add_ordinal_thresholds(pt, data)
    return with_groups(pt, ["a", "b"], equal, list(partial))


@pytest.mark.parametrize(
    ("equal", "partial"),
    [([], []), (["loadings", "thresholds"], []), (["thresholds"], ["y2|t1", "y2|t2", "y2|t3"])],
)
def test_grouped_ordinal_density_is_the_sum_of_each_groups_one_group_density(equal, partial):
    data = _ordinal()
    grouped = _ordinal_grouped(data, equal, partial)
    density, expected = _sum_over_groups(
        grouped, data.astype(float), _groups(len(data)), "non-centred"
    )
    assert density == pytest.approx(expected, rel=1e-9)


def test_equal_thresholds_are_the_first_groups_variables_and_free_the_later_scales():
    """lavaan (theta parameterisation): with thresholds equal, group 2's thresholds are group
    1's free parameters; its latent mean and its ordinal items' residual variances are free
    (fixed to 0 and 1 in group 1); with loadings equal too, its latent variance."""
    t = _ordinal_grouped(_ordinal(), ["loadings", "thresholds"]).table
    first, second = t[t.group == 1], t[t.group == 2]
    thresholds = second[second.op == "|"]
    assert (thresholds.free.to_numpy() == first[first.op == "|"].free.to_numpy()).all()
    residual = (second.op == "~~") & (second.lhs == second.rhs) & second.lhs.str.startswith("y")
    assert (second[residual].free > 0).all()
    assert (first[(first.op == "~~") & first.lhs.str.startswith("y")].value == 1.0).all()
    latent = second[second.lhs == "F"]
    assert (latent[latent.op.isin(["~1", "~~"])].free > 0).all()
    configural = _ordinal_grouped(_ordinal(), []).table
    later = configural[configural.group == 2]
    assert not set(later.free[later.op == "|"]) & set(configural.free[configural.group == 1])
    assert (later[(later.op == "~~") | (later.op == "~1")].free == 0).all()


def test_a_later_group_freeing_some_of_an_items_thresholds_is_refused():
    data = _ordinal()
    grouped = _ordinal_grouped(data, ["thresholds"], ["y2|t2"])
    with pytest.raises(ModelSpecError, match=r"some but not all thresholds of \['y2'\]"):
        pymc_model(grouped, data.astype(float), groups=_groups(len(data)))


def test_grouped_moderator_percentiles_are_each_groups_own():
    pt = build_partable(INTERACTION)
    rng = np.random.default_rng(7)
    data = pd.DataFrame(rng.normal(size=(30, 9)), columns=pt.indicators)
    groups = _groups(len(data))
    grouped = with_groups(pt, ["a", "b"], ["loadings", "intercepts"])
    model = pymc_model(grouped, data, groups=groups, save_latent=True).model
    point = model.initial_point()
    outputs = model.replace_rvs_by_values([model["moderator_quantiles"], model["latent_scores"]])
    fn = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore", mode=FAST)
    quantiles, eta = fn(point)
    assert quantiles.shape == (2, 1, 3)
    for g, label in enumerate(["a", "b"]):
        w = np.sort(eta[groups == label, 1])
        expected = [w[int(np.floor(q * (len(w) - 1)))] for q in (0.16, 0.5, 0.84)]
        np.testing.assert_allclose(quantiles[g, 0], expected)


def test_item_residual_covariances_per_group_are_refused_with_one_message():
    pt = build_partable(INTERACTION + "x1 ~~ x2\n")
    data = pd.DataFrame(np.zeros((12, 9)), columns=pt.indicators)
    grouped = with_groups(pt, ["a", "b"])
    with pytest.raises(ModelSpecError, match=r"residual covariances of items in a multiple-group"):
        pymc_model(grouped, data, groups=_groups(len(data)))


def _graph_ops(model) -> list:
    """The apply nodes of a model's log density graph (before rewriting)."""
    return list(applys_between(model.value_vars, [model.logp()]))


def test_grouped_graph_gathers_entries_not_matrices_and_shifts_locations_in_one_product():
    """Two groups, latent interaction: no (N x k x k) gather of a group's matrices per
    respondent (each path coefficient's gradient a zero-filled array of that size), and the
    centred intercepts' shifts are one product per group whatever the number of items (before:
    Study A's two-group gradient cost 3.2x the one-group one's, 0.42 against 0.13 ms, with
    66 small products)."""
    counts = []
    for extra in (0, 2):
        text = INTERACTION
        for f in "XWY":
            more = [f"{f.lower()}{k}" for k in range(4, 4 + extra)]
            text = text.replace(f"{f} =~ ", f"{f} =~ {' + '.join([*more, ''])}")
        pt = build_partable(text)
        rng = np.random.default_rng(5)
        data = pd.DataFrame(rng.normal(size=(31, len(pt.indicators))), columns=pt.indicators)
        grouped = with_groups(pt, ["a", "b"], ["loadings"])
        groups = _groups(len(data))
        # non-centred: the same latent-score variables however many items
        model = pymc_model(grouped, data, groups=groups, latent_scores="non-centred").model
        ops = _graph_ops(model)
        gathered = [
            node
            for node in ops
            if isinstance(node.op, AdvancedSubtensor) and node.outputs[0].ndim >= 3
        ]
        assert not gathered
        counts.append(sum(isinstance(node.op, Dot) for node in ops))
    assert counts[0] == counts[1]
