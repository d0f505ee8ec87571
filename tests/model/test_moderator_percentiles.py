"""The moderator's 16th/50th/84th latent percentiles that the conditional likelihood records
per draw (``moderator_quantiles``, the points of the W=p16/p50/p84 conditional effects), against
the order statistics of the same draw's latent scores computed here."""

import numpy as np
import pandas as pd
from model_points import value_function

from bayes_sor.model.build import pymc_model
from bayes_sor.spec.partable import build_partable

MODEL = """X =~ x1 + x2 + x3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
Y ~ X + W + X:W
"""


def test_moderator_percentiles_are_order_statistics_of_its_scores():
    rng = np.random.default_rng(1)
    n = 301
    data = pd.DataFrame(
        rng.normal(size=(n, 9)), columns=[f"{f}{i}" for f in "xwy" for i in (1, 2, 3)]
    )
    built = pymc_model(
        build_partable(MODEL),
        data,
        likelihood="conditional",
        save_latent=True,
        latent_scores="non-centred",
    )
    model = built.model
    fn = value_function(model, [model["latent_scores"], model["moderator_quantiles"]])
    # a point away from the start, where the scores spread out
    scores, quantiles = fn(
        {k: v + rng.normal(size=np.shape(v)) for k, v in model.initial_point().items()}
    )
    w = np.sort(scores[:, built.representation.latents.index("W")])
    # the (n - 1) q-th order statistic, n = 301: ranks 48, 150, 252 (0-based)
    np.testing.assert_allclose(quantiles[0], w[[48, 150, 252]], rtol=1e-12)
    assert np.ptp(w) > 1  # the scores differ, so a wrong rank or latent would show
