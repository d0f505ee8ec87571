"""Matrix representation of the parameter table."""

import numpy as np
import pytest

from bayes_sor.spec.matrices import implied_moments, path_depth, representation
from bayes_sor.spec.partable import build_partable

MEASUREMENT = "A =~ a1 + a2 + a3\nB =~ b1 + b2 + b3\nC =~ c1 + c2 + c3\n"


@pytest.mark.parametrize(
    ("structure", "depth"),
    [
        ("", 0),
        ("B ~ A\n", 1),
        ("B ~ A\nC ~ A\n", 1),
        ("B ~ A\nC ~ B + A\n", 2),
    ],
)
def test_path_depth_is_the_longest_chain_of_regressions(structure, depth):
    rep = representation(build_partable(MEASUREMENT + structure))
    assert path_depth(rep) == depth
    beta = np.where(rep.beta != rep.zero, 1.0, 0.0)
    assert not np.linalg.matrix_power(beta, depth + 1).any()
    if depth:
        assert np.linalg.matrix_power(beta, depth).any()


def test_path_depth_refuses_a_cycle():
    rep = representation(build_partable(MEASUREMENT + "B ~ A\nC ~ B\n"))
    rep.beta[0, 2] = rep.beta[1, 0]  # A ~ C closes the loop the parser would refuse
    with pytest.raises(ValueError, match="cycle"):
        path_depth(rep)


def test_item_variances_are_the_diagonal_of_the_item_covariance():
    pt = build_partable(MEASUREMENT + "C ~ A + B + A:B\na1 ~~ a2\n")
    rep = representation(pt)
    par = np.random.default_rng(0).uniform(0.2, 0.9, size=(4, 3, rep.n_par))
    moments = implied_moments(rep, par)
    assert moments.item_cov.shape == (4, 3, 9, 9)
    assert moments.item_cov[..., 0, 1].any()  # the residual covariance is in the matrix
    np.testing.assert_allclose(
        moments.item_var, np.diagonal(moments.item_cov, axis1=-2, axis2=-1), rtol=1e-12
    )
