"""The moderator's scores after a quadrature fit of an affine layout: the vectorised draw on
cells (:func:`~bayes_sor.model.quadrature_kernel.draw_on_cells`) against a scalar reference of
its rule and against the moments of the density on the cells it draws from, and
:func:`~bayes_sor.posterior.scores.affine_moderator_draws` against that reference applied draw
by draw."""

from __future__ import annotations

import numpy as np
import pytest
from test_quadrature import MODERATED_MEDIATION, SQUARED, _case
from test_quadrature_kernel import _coefficients, _extreme, log_density

from bayes_sor.data.missing import Patterns
from bayes_sor.model.quadrature import Layout, table_function
from bayes_sor.model.quadrature_kernel import BLOCK, draw_on_cells
from bayes_sor.posterior.scores import ADAPTED_CELLS, ADAPTED_SPAN, affine_moderator_draws
from bayes_sor.spec.matrices import representation

EDGES = np.linspace(-ADAPTED_SPAN, ADAPTED_SPAN, ADAPTED_CELLS + 1)
CELLS = (EDGES[1:] + EDGES[:-1]) / 2
WIDTH = EDGES[1] - EDGES[0]


def _log_density(row: np.ndarray, degree: int) -> np.ndarray:
    """log p(y_i | w) without its constant plus the standardised prior's -u^2/2 at each cell's
    centre u (:func:`log_density`, with log det as the rule was before it was vectorised)."""
    u = row[-2] + row[-1] * CELLS
    return log_density(row[None], u[None], degree)[0] - 0.5 * u * u


def _reference(rows: np.ndarray, uniforms: np.ndarray, degree: int):
    """The draw respondent by respondent: the cells' densities shifted by the largest, their
    running sum, the first cell whose sum reaches uniform 0 times the total, uniform 1 within
    it. Also whether the pick is a tie: within 1e-12 of the total from a boundary between
    cells, where the order of a sum's additions may decide."""
    base = 4 * degree + 3
    draws, ties = np.empty(len(rows)), np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        values = _log_density(row, degree)
        running = np.cumsum(np.exp(values - values.max()))
        pick = uniforms[i, 0] * running[-1]
        cell = next((c for c in range(len(CELLS)) if running[c] >= pick), len(CELLS) - 1)
        # a pick of 0 takes the first cell, one of the total the last: neither by rounding
        ties[i] = pick > 0 and np.abs(running[:-1] - pick).min() <= 1e-12 * running[-1]
        sd, centre, spread = row[base + 4 : base + 7]
        draws[i] = sd * (centre + spread * (CELLS[cell] + WIDTH * (uniforms[i, 1] - 0.5)))
    return draws, ties


def _rows(seed: int, n: int, degree: int) -> np.ndarray:
    """``n`` random rows (:func:`_coefficients`) whose Woodbury determinant is positive on
    every cell, as a model's is (det M = |Sigma(w)| / |Sigma0|)."""
    rows = _coefficients(np.random.default_rng(seed), 2 * n + 10, degree)
    with np.errstate(invalid="ignore"):
        positive = [np.isfinite(_log_density(row, degree)).all() for row in rows]
    return rows[positive][:n]


@pytest.mark.parametrize("degree", [2, 3])
@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK + 1, 3 * BLOCK + 5])
def test_draws_equal_the_scalar_rule_at_any_n(degree, n):
    """Blocks of BLOCK respondents, the last one padded: every draw as the rule written per
    respondent, at n off a multiple of the block, the edge rows of :func:`_extreme` (a log
    density of -1e4, cells e^-1000 and more apart, a posterior 1e-3 and one 3 times as wide as
    the prior, all mass in the first or the last cell) among them and uniforms at 0 and just
    below 1."""
    # densities falling and rising by ~1000 nats a cell: all mass in the first or last cell
    steep = _rows(99, 2, degree)
    steep[:, 1] = [2e4, -2e4]
    rows, extreme = _rows(n, n, degree), np.vstack([_extreme(degree), steep])
    if n > 2 * len(extreme):  # in the first block and in the padded last one
        rows[: len(extreme)] = rows[-len(extreme) :] = extreme
    uniforms = np.random.default_rng(n + 1).uniform(size=(n, 2))
    if n > 1:
        uniforms[-1] = [0.0, 1.0 - 2.0**-53]
        uniforms[0, 0] = 1.0 - 2.0**-53
    reference, ties = _reference(rows, uniforms, degree)
    draws = draw_on_cells(rows, CELLS, WIDTH, uniforms, degree)
    assert draws.shape == (n,) and not ties.all()
    np.testing.assert_allclose(draws[~ties], reference[~ties], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("degree", [2, 3])
def test_draws_have_the_cells_density_moments(degree):
    """Each row drawn 4000 times: the draws' mean and SD are those of the density on the cells
    (a cell's mass, uniform within it: variance width^2 / 12 per cell), for a typical
    respondent, a narrow posterior (within one or two cells) and a wide one."""
    rows = _rows(11, 3, degree)
    base = 4 * degree + 3
    rows[1, base + 6], rows[2, base + 6] = 0.05, 2.0
    copies = 4000
    draws = draw_on_cells(
        np.repeat(rows, copies, axis=0),
        CELLS,
        WIDTH,
        np.random.default_rng(12).uniform(size=(3 * copies, 2)),
        degree,
    ).reshape(3, copies)
    for row, drawn in zip(rows, draws, strict=True):
        sd, centre, spread = row[base + 4 : base + 7]
        mass = np.exp(_log_density(row, degree))
        mass /= mass.sum()
        mean = CELLS @ mass
        scale = sd * spread * np.sqrt((CELLS - mean) ** 2 @ mass + WIDTH**2 / 12)
        assert abs(drawn.mean() - sd * (centre + spread * mean)) < 4 * scale / np.sqrt(copies)
        assert abs(drawn.std() / scale - 1) < 4 / np.sqrt(2 * copies)


def test_wrong_degree_or_width_is_an_error():
    rows = _rows(0, 3, 2)
    uniforms = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="degree 2 or 3"):
        draw_on_cells(rows, CELLS, WIDTH, uniforms, 4)
    with pytest.raises(ValueError, match="columns do not match the degree"):
        draw_on_cells(rows, CELLS, WIDTH, uniforms, 3)


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, SQUARED])
def test_moderator_draws_are_the_rule_on_each_draws_table(model):
    """Per posterior draw, chain by chain: the likelihood's coefficient table at that draw
    (with X:X centred by the Newton steps), two uniform numbers per respondent from the
    generator in that order, the rule of :func:`_reference`: a seed gives the same scores as
    before the draw was vectorised (missing answers among the respondents)."""
    tab, par, y = _case(model, n=45, seed=8)
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    patterns = Patterns.of(y)
    draws = par + 0.03 * np.random.default_rng(9).normal(size=(2, 3, len(par)))
    ours = affine_moderator_draws(rep, layout, draws, y, patterns, np.random.default_rng(10))
    table = table_function(rep, layout, y, patterns)
    rng = np.random.default_rng(10)
    for chain, draw in np.ndindex(2, 3):
        uniforms = rng.uniform(size=(len(y), 2))
        expected, ties = _reference(table(draws[chain, draw]), uniforms, layout.degree)
        assert not ties.any()
        np.testing.assert_allclose(ours[chain, draw], expected, rtol=1e-12)
