"""The reflection in which latent scores are sampled (bayes_sor/model/latent.py)."""

import numpy as np
import pytensor.tensor as pt
import pytest

from bayes_sor.model.latent import reflect


@pytest.mark.parametrize("shape", [(7,), (7, 3), (2, 2)])
def test_reflection_is_an_orthogonal_involution_swapping_e1_and_the_mean_direction(shape):
    """H = H' = H^-1 (the reparameterisation's Jacobian is 1 and it keeps iid rows iid), and
    the mean direction u = 1 / sqrt(N) becomes the first coordinate."""
    n = shape[0]
    h = reflect(np.eye(n))
    np.testing.assert_allclose(h, h.T, atol=1e-15)
    np.testing.assert_allclose(h @ h, np.eye(n), atol=1e-14)
    np.testing.assert_allclose(h[:, 0], np.full(n, 1 / np.sqrt(n)), rtol=1e-13)
    x = np.random.default_rng(1).normal(size=shape)
    np.testing.assert_allclose(reflect(x), np.tensordot(h, x, axes=1), atol=1e-14)
    np.testing.assert_allclose(reflect(x)[0], np.sqrt(n) * x.mean(axis=0), rtol=1e-13)
    symbolic = pt.tensor("x", shape=(None,) * len(shape))
    np.testing.assert_allclose(reflect(symbolic, n).eval({symbolic: x}), reflect(x), atol=1e-14)
