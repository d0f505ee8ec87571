"""Sampling: settings checked before anything compiles, interrupted traces never pass for
complete ones, and the same seed gives a byte-identical ``posterior.nc``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from paths import ROOT

from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import pymc_model
from bayes_sor.report.run_report import write_run
from bayes_sor.runs.fit import fit
from bayes_sor.sampling.nutpie_cache import compile_pymc_model
from bayes_sor.sampling.samplers import (
    DEFAULTS,
    LOW_RANK_GAMMA,
    LOW_RANK_MAX_DIM,
    ORDINAL_DEFAULTS,
    QUADRATURE_DEFAULTS,
    SamplerSettings,
    _complete,
    nutpie_options,
)
from bayes_sor.spec.partable import build_partable

#: attributes ArviZ / PyMC stamp on a trace that differ between otherwise identical runs;
#: bayes_sor drops them, so that none is left to exempt from the comparison below
RUN_SPECIFIC_ATTRS = {"created_at", "sampling_time"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SamplerSettings(tune=0), "nutpie needs at least one tuning step"),
        (SamplerSettings(seed=-1), "--seed must be a whole number from 0 to 2\\^64 - 1"),
        (SamplerSettings(seed=2**64), "--seed must be"),
        (SamplerSettings(draws=0), "--chains and --draws must be at least 1"),
        (SamplerSettings(sampler="stan"), "unknown sampler 'stan'"),
        (SamplerSettings(adaptation="dense"), "unknown adaptation 'dense'"),
    ],
)
def test_settings_that_would_crash_the_sampler_are_refused(settings, message):
    with pytest.raises(ModelSpecError, match=message):
        settings.validate()
    SamplerSettings(sampler="pymc", tune=0, seed=2**64 - 1).validate()


def _trace(chains: int, draws: int) -> xr.DataTree:
    posterior = xr.Dataset(
        {"par": (("chain", "draw", "param"), np.zeros((chains, draws, 2)))},
        attrs={"created_at": "2026-01-01T00:00:00", "arviz_version": "1"},
    )
    stats = xr.Dataset(
        {"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))},
        attrs={"created_at": "2026-01-01T00:00:01", "sampling_time": 2.5},
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


@pytest.mark.parametrize(("chains", "draws"), [(2, 99), (1, 100)])
def test_a_trace_cut_short_by_ctrl_c_is_an_interrupt_not_a_result(chains, draws):
    """PyMC and nutpie return the draws so far after Ctrl-C as if the run were complete."""
    with pytest.raises(KeyboardInterrupt):
        _complete(_trace(chains, draws), SamplerSettings(chains=2, draws=100))


def test_a_complete_trace_loses_only_its_timestamps():
    trace = _complete(_trace(2, 100), SamplerSettings(chains=2, draws=100))
    assert dict(trace["posterior"].attrs) == {"arviz_version": "1"}
    assert dict(trace["sample_stats"].attrs) == {}


def test_same_seed_same_data_gives_a_byte_identical_posterior_file(tmp_path):
    def run(name: str) -> Path:
        result = fit(
            "visual =~ x1 + x2 + x3\n",
            ROOT / "data/holzinger_swineford.csv",
            scale="none",
            likelihood="marginal",
            settings=SamplerSettings(chains=2, draws=50, tune=50, seed=3, progressbar=False),
        )
        return write_run(result, tmp_path / name, report=False) / "posterior.nc"

    first, second = run("first"), run("second")
    a, b = xr.open_datatree(first), xr.open_datatree(second)
    assert [node.path for node in a.subtree] == [node.path for node in b.subtree]
    for node in a.subtree:
        other = b[node.path]
        assert not RUN_SPECIFIC_ATTRS & set(node.attrs), node.path
        assert dict(node.attrs) == dict(other.attrs), node.path
        assert set(node.variables) == set(other.variables), node.path
        for name, variable in node.variables.items():
            values, again = variable.values, other[name].values
            assert values.dtype == again.dtype, (node.path, name)
            assert values.tobytes() == again.tobytes(), (node.path, name)
            assert variable.attrs == other[name].attrs, (node.path, name)
    assert first.read_bytes() == second.read_bytes()


def test_auto_adaptation_is_low_rank_for_marginal_posteriors_regularised_when_large(root):
    """``auto``: the low-rank mass matrix for every marginal and quadrature posterior (before:
    the diagonal for quadrature ones, and for marginal ones above 150 coordinates, where the
    two-group Study A's R-hat missed the gate), with nutpie's regularisation up to 150
    coordinates and LOW_RANK_GAMMA above (nutpie's own made the 203-coordinate two-group
    Study A's tuning 11x costlier per draw)."""
    hs = build_partable((root / "models" / "holzinger_swineford.lav").read_text())
    data = pd.read_csv(root / "data" / "holzinger_swineford.csv")
    built = pymc_model(hs, data)
    n_dim = compile_pymc_model(built.model, initial_points=built.initial_values).n_dim
    assert n_dim == hs.table.free.max() == 30
    assert nutpie_options("auto", "marginal", n_dim) == {"adaptation": "low_rank"}
    assert nutpie_options("auto", "marginal", LOW_RANK_MAX_DIM + 1) == {
        "adaptation": "low_rank",
        "mass_matrix_gamma": LOW_RANK_GAMMA,
    }
    assert nutpie_options("auto", "quadrature", n_dim) == {"adaptation": "low_rank"}
    assert nutpie_options("auto", "conditional", n_dim) == {"adaptation": "diag"}
    assert nutpie_options("diag", "marginal", LOW_RANK_MAX_DIM + 1) == {"adaptation": "diag"}


def _low_rank_against_diagonal(model, data, likelihood: str, **options) -> None:
    """The low-rank mass matrix (``auto``) and the diagonal one sample the same posterior:
    every free parameter's mean within 4 Monte Carlo SEs, and the low-rank one has the larger
    minimum bulk ESS (4 x 500 draws after 500, one seed)."""

    def estimates(adaptation: str) -> pd.DataFrame:
        settings = SamplerSettings(
            chains=4, draws=500, tune=500, seed=11, progressbar=False, adaptation=adaptation
        )
        result = fit(model, data, likelihood=likelihood, settings=settings, **options)
        est = result.estimates
        return est[est.free > 0].reset_index(drop=True)

    low_rank, diag = estimates("auto"), estimates("diag")
    mcse = np.sqrt(low_rank.sd**2 / low_rank.ess_bulk + diag.sd**2 / diag.ess_bulk)
    z = (low_rank["mean"] - diag["mean"]).abs() / mcse
    assert z.max() < 4, low_rank.assign(z=z).nlargest(3, "z")
    assert low_rank.ess_bulk.min() > 1.2 * diag.ess_bulk.min()


def test_low_rank_adaptation_samples_the_same_hs_posterior_with_more_effective_draws():
    """HS CFA, marginal: the low-rank mass matrix, the default there (run 8: min bulk ESS 2511
    against the diagonal's 1461 at 4 x 1000)."""
    _low_rank_against_diagonal(
        ROOT / "models/holzinger_swineford.lav",
        ROOT / "data/holzinger_swineford.csv",
        "marginal",
        scale="none",
    )


@pytest.mark.slow
def test_low_rank_adaptation_samples_the_same_quadrature_posterior_with_more_effective_draws():
    """Study A, quadrature likelihood: the low-rank mass matrix, the default there (section
    6.5 of benchmarks/RESULTS.md: min bulk ESS 2849-3381 against the diagonal's 951-1171 at
    4 x 1000). Slow: the quadrature model's first compilation takes about a minute and a half."""
    _low_rank_against_diagonal(
        ROOT / "models/impulse_buying.lav", ROOT / "data/impulse_buying.csv", "quadrature"
    )


def _ordinal_answers(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    latent = 0.9 * rng.normal(size=(n, 1)) + rng.normal(size=(n, 3))
    return pd.DataFrame(1 + np.digitize(latent, [-0.8, 0.0, 0.9]), columns=["y1", "y2", "y3"])


@pytest.mark.parametrize(
    ("ordinal", "group", "expected"),
    [
        ("all", None, ORDINAL_DEFAULTS),
        (None, None, DEFAULTS),
        ("all", "g", DEFAULTS),  # multiple groups: thresholds not standardised, not measured
    ],
    ids=["one-group ordinal", "continuous", "two-group ordinal"],
)
def test_unset_settings_take_the_models_defaults(ordinal, group, expected):
    """A one-group model with ordinal items (standardised thresholds) samples 4 x 600 after
    400 at target acceptance 0.85 unless told otherwise; every other model, and every setting
    given, stays as it was."""
    from bayes_sor.data.categories import add_ordinal_thresholds
    from bayes_sor.spec.groups import with_groups

    data = _ordinal_answers().assign(g=np.repeat(["a", "b"], 20))
    partable = build_partable("F =~ y1 + y2 + y3\n", ordinal=ordinal)
    if ordinal:
        partable = add_ordinal_thresholds(partable, data)
    if group:
        partable = with_groups(partable, ["a", "b"])
    groups = data.g.to_numpy() if group else None
    built = pymc_model(partable, data, likelihood="conditional", groups=groups)
    resolved = SamplerSettings().for_model(built)
    assert {k: getattr(resolved, k) for k in expected} == expected
    given = SamplerSettings(draws=300, tune=200, target_accept=0.8).for_model(built)
    assert (given.draws, given.tune, given.target_accept) == (300, 200, 0.8)


def test_a_quadrature_fit_takes_its_own_defaults():
    """The quadrature likelihood samples no latent score: 4 x 1000 after 500 at target
    acceptance 0.8 unless told otherwise; the same model by the conditional likelihood keeps
    the general defaults."""
    partable = build_partable(
        "X =~ x1 + x2 + x3\nZ =~ z1 + z2 + z3\nY =~ y1 + y2 + y3\nY ~ X + Z + X:Z\n"
    )
    rng = np.random.default_rng(1)
    data = pd.DataFrame(rng.normal(size=(60, 9)), columns=partable.indicators)
    for likelihood, expected in (("quadrature", QUADRATURE_DEFAULTS), ("conditional", DEFAULTS)):
        built = pymc_model(partable, data, likelihood=likelihood)
        resolved = SamplerSettings(draws=500).for_model(built)
        assert resolved.draws == 500  # given, kept
        assert (resolved.tune, resolved.target_accept) == (
            expected["tune"],
            expected["target_accept"],
        ), likelihood
        assert SamplerSettings().for_model(built).draws == expected["draws"]
