"""The quadrature likelihood (moderator integrated out) gives the conditional likelihood's
posterior (latent scores sampled): every parameter and effect within 0.1 posterior SD, on Study
A and on a simulated moderated mediation, up to the Monte Carlo error of the two runs; and
the SBC of the small moderated-mediation model with the quadrature likelihood is calibrated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import truth
from paths import ROOT
from posterior_helpers import fit_posterior
from test_sbc_conditional import MODERATED_MEDIATION  # the SBC model of the conditional one

from bayes_sor.model.simulate import simulate
from bayes_sor.posterior.effects import effect_draws
from bayes_sor.sbc.run import make_config, run_sbc
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

# slow, not in the CI tier: the quadrature model compiles for 3-4 minutes on a cold cache
pytestmark = pytest.mark.slow

#: the agreement asked for, in posterior SDs of the conditional fit
AGREEMENT = 0.1


def _summaries(partable, data, likelihood: str) -> pd.DataFrame:
    """Mean, SD and bulk ESS of every free parameter and effect (effects at the normal
    moderator points, which need no latent scores)."""
    posterior, estimates = fit_posterior(partable, data, likelihood, chains=4, draws=2000, seed=5)
    rows = estimates[estimates.free > 0][["mean", "sd", "ess_bulk"]]
    rep = representation(partable)
    for e in effect_draws(partable, rep, posterior["par"].values):
        if "=p" not in e.moderator_value:  # the percentiles need latent scores
            values = np.asarray(e.draws)
            rows.loc[f"{e.kind}: {e.effect} {e.moderator_value}"] = [
                values.mean(),
                values.std(),
                np.nan,
            ]
    return rows


def _distances(partable, data) -> pd.DataFrame:
    quadrature = _summaries(partable, data, "quadrature")
    conditional = _summaries(partable, data, "conditional")
    both = quadrature.join(conditional, lsuffix="_q", rsuffix="_c")
    both["z"] = (both.mean_q - both.mean_c).abs() / both.sd_c
    both["sd_ratio"] = both.sd_q / both.sd_c
    return both


def _check(both: pd.DataFrame) -> None:
    # two independent runs of >= 1000 effective draws each: their means differ by about
    # sd * sqrt(1/ess_q + 1/ess_c) by chance; three of those on top of the agreement
    ess = both[["ess_bulk_q", "ess_bulk_c"]].fillna(both.ess_bulk_c.min()).clip(upper=4000)
    noise = 3 * np.sqrt(1 / ess.ess_bulk_q + 1 / ess.ess_bulk_c)
    far = both[both.z > AGREEMENT + noise]
    assert far.empty, far[["mean_q", "mean_c", "sd_c", "z"]]
    assert (both.sd_ratio - 1).abs().max() < AGREEMENT + 0.1, both.sd_ratio.describe()
    print(f"max |mean difference| / posterior SD: {both.z.max():.3f} ({both.z.idxmax()})")


def test_study_a_quadrature_posterior_equals_the_conditional_one():
    partable = build_partable((ROOT / "models" / "impulse_buying.lav").read_text())
    data = pd.read_csv(ROOT / "data" / "impulse_buying.csv")
    _check(_distances(partable, data))


def test_moderated_mediation_quadrature_posterior_equals_the_conditional_one():
    partable = build_partable(MODERATED_MEDIATION)
    values = {"Y~M:W": 0.3, "M~X": 0.5, "Y~M": 0.4}
    data = simulate(partable, truth(partable, values, intercept=3.0), 400, seed=11, scale=None)
    _check(_distances(partable, data))


def test_moderated_mediation_sbc_with_the_quadrature_likelihood_is_calibrated(tmp_path):
    config = make_config(
        MODERATED_MEDIATION, 250, draws=500, tune=500, chains=1, seed=3, likelihood="quadrature"
    )
    sbc = run_sbc(config, tmp_path / "quadrature", 100, workers=2, progress=False)
    summary = sbc.summary.set_index("quantity")
    assert sbc.verdict.n_failed == 0
    for name in ("Y~M:W", "index_moderated_mediation: X -> M -> Y @ W"):
        assert summary.loc[name, "n_sims"] == 100, name
    assert sbc.verdict.calibrated, sbc.summary.sort_values("p_value").head(10)
