"""Summary-statistics input: one covariance (or correlation) matrix and N, or one per group
stacked in one file with the group column (issue 20 item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import group_covariances, grouped_answers

from bayes_sor.data.summary_statistics import load_group_summary
from bayes_sor.errors import DataError

ITEMS = ["y1", "y2", "y3", "y4"]


def test_each_group_gets_its_own_matrix_and_n():
    a, b = grouped_answers(80, 0.8, 1), grouped_answers(60, 1.2, 2)
    data = load_group_summary(
        ITEMS, "g", cov=group_covariances(("men", a), ("women", b)), nobs=[80, 60]
    )
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
    a, b = grouped_answers(80, 0.8, 1), grouped_answers(60, 1.2, 2)
    cov = group_covariances(("men", a), ("women", b))
    if frame == "nogroup":
        cov = cov.rename(columns={"g": "sex"})
    if frame == "onegroup":
        cov = group_covariances(("men", a))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_group_summary(ITEMS, "g", cov=cov, nobs=nobs)
