"""Summary-statistics input per group (issue 20 item 2): one covariance matrix per group
stacked in one file with the group column, and one N per group (``--nobs 156,145``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_sor.cli.main import main
from bayes_sor.data.summary_statistics import load_group_summary
from bayes_sor.errors import DataError
from bayes_sor.model.build import pymc_model
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import implied_moments, representation
from bayes_sor.spec.partable import build_partable, without_mean_structure

ONE_FACTOR = "F =~ y1 + y2 + y3 + y4"
ITEMS = ["y1", "y2", "y3", "y4"]


def group_answers(n: int, loading: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({y: loading * f + rng.normal(0, 0.6, n) for y in ITEMS})


def stacked(*groups: tuple[str, pd.DataFrame]) -> pd.DataFrame:
    """The matrices file: a ``g`` column, the row names, then the items."""
    parts = []
    for label, data in groups:
        cov = data.cov().reset_index(names="item")
        parts.append(cov.assign(g=label)[["g", "item", *ITEMS]])
    return pd.concat(parts, ignore_index=True)


def test_each_group_gets_its_own_matrix_and_n():
    a, b = group_answers(80, 0.8, 1), group_answers(60, 1.2, 2)
    data = load_group_summary(ITEMS, "g", cov=stacked(("men", a), ("women", b)), nobs=[80, 60])
    assert data.group_levels == ["men", "women"]
    assert [d.nobs for d in data.group_data] == [80, 60]
    np.testing.assert_allclose(data.group_data[1].cov.to_numpy(), b.cov().to_numpy())
    assert data.nobs == 140


@pytest.mark.parametrize(
    ("nobs", "frame", "message"),
    [
        ([80], None, "holds 2 groups (men, women) but --nobs gives 1 sample size"),
        ([80, 60], "nogroup", "has no 'g' column"),
        ([80], "onegroup", "only one group ('men')"),
    ],
)
def test_bad_grouped_summary_input_is_named(nobs, frame, message):
    a, b = group_answers(80, 0.8, 1), group_answers(60, 1.2, 2)
    cov = stacked(("men", a), ("women", b))
    if frame == "nogroup":
        cov = cov.rename(columns={"g": "sex"})
    if frame == "onegroup":
        cov = stacked(("men", a))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_group_summary(ITEMS, "g", cov=cov, nobs=nobs)


def test_grouped_covariance_likelihood_is_the_sum_of_each_groups_wishart_density():
    """Each group's matrix against its own implied covariance: the model's log-likelihood
    differs between two parameter points by the sum of the groups' Wishart log-densities'
    difference (before: refused)."""
    a, b = group_answers(80, 0.8, 1), group_answers(60, 1.2, 2)
    data = load_group_summary(ITEMS, "g", cov=stacked(("a", a), ("b", b)), nobs=[80, 60])
    pt = without_mean_structure(with_groups(build_partable(ONE_FACTOR), ["a", "b"], ["loadings"]))
    model = pymc_model(pt, data).model
    outputs = model.replace_rvs_by_values([model["par"], sum(model.potentials)])
    fn = model.compile_fn(outputs, inputs=model.value_vars, point_fn=True, on_unused_input="ignore")
    values = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        point = {
            k: v + rng.uniform(-0.3, 0.3, np.shape(v)) for k, v in model.initial_point().items()
        }
        par, loglik = fn(point)
        wishart = sum(
            stats.wishart(
                df=len(y) - 1, scale=implied_moments(representation(pt, g), par).item_cov
            ).logpdf((len(y) - 1) * y.cov().to_numpy())
            for g, y in ((1, a), (2, b))
        )
        values.append((loglik, wishart))
    (l1, w1), (l2, w2) = values
    assert l1 - l2 == pytest.approx(w1 - w2, rel=1e-9)
    assert l1 != pytest.approx(l2)


def test_cli_refuses_one_n_for_two_groups(tmp_path, capsys):
    a, b = group_answers(80, 0.8, 1), group_answers(60, 1.2, 2)
    stacked(("a", a), ("b", b)).to_csv(tmp_path / "covs.csv", index=False)
    (tmp_path / "m.lav").write_text(ONE_FACTOR)
    args = ["fit", str(tmp_path / "m.lav"), "--cov", str(tmp_path / "covs.csv")]
    args += ["--group", "g", "--out", str(tmp_path / "run")]
    assert main([*args, "--nobs", "80"]) == 2
    assert "but --nobs gives 1 sample size(s)" in capsys.readouterr().err
    assert main([*args, "--nobs", "80,x"]) == 2
    assert "is not a sample size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_two_group_covariance_fit_is_checked_per_group(tmp_path):
    """``fit --cov covs.csv --group g --nobs 300,300``, then ``ppc`` and ``reliability``
    per group from each group's matrix."""
    a, b = group_answers(300, 0.8, 1), group_answers(300, 1.2, 2)
    stacked(("a", a), ("b", b)).to_csv(tmp_path / "covs.csv", index=False)
    (tmp_path / "m.lav").write_text(ONE_FACTOR)
    out = tmp_path / "run"
    args = ["fit", str(tmp_path / "m.lav"), "--cov", str(tmp_path / "covs.csv")]
    args += ["--group", "g", "--nobs", "300,300", "--out", str(out), "--no-progress"]
    args += ["--chains", "2", "--draws", "200", "--tune", "300", "--allow-warnings"]
    assert main(args) == 0
    estimates = pd.read_csv(out / "estimates.csv")
    loadings = estimates[(estimates.op == "=~") & (estimates.rhs == "y1")]
    by_group = loadings.set_index("group")["mean"]
    assert by_group["b"] > by_group["a"]
    assert main(["ppc", str(out), "--draws", "100"]) == 0
    measures = pd.read_csv(out / "fit_measures.csv").set_index(["group", "measure"]).value
    assert measures["a", "ppp"] > 0.05
    assert measures["b", "ppp"] > 0.05
    assert main(["reliability", str(out)]) == 0
    table = pd.read_csv(out / "reliability.csv").set_index(["group", "measure", "construct"])
    assert table.loc[("b", "omega", "F"), "mean"] > table.loc[("a", "omega", "F"), "mean"]
