"""Simulation-based calibration: calibrated inference passes, a wrong prior is flagged, runs
resume and give the same ranks on a Dask cluster as locally.

The model: one factor with four items mediating between two single-indicator latents
(:data:`sbc_models.MEDIATION`).

The fast SBC runs share one pool of two worker processes, so the model is compiled once per
worker: the miscalibrated run simulates loadings from a prior twice as wide and fits with
``prior_scale_fit=0.5``, which is the calibrated run's fitting model exactly.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sbc_models import mediation_model, study_a_model

from bayes_sor.cli.main import main
from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import pymc_model
from bayes_sor.model.simulate import prior_draw
from bayes_sor.sampling.samplers import SamplerSettings, sample
from bayes_sor.sbc import simulations
from bayes_sor.sbc.report import holm, pit_values, summary_frame
from bayes_sor.sbc.run import make_config, run_sbc, vague_default_priors
from bayes_sor.sbc.simulations import (
    PriorSampler,
    scale_loading_priors,
    simulate_dataset,
    simulation_seeds,
)
from bayes_sor.spec.matrices import extend, representation
from bayes_sor.spec.partable import build_partable, read_prior_file

SETTINGS = {"draws": 200, "tune": 200, "chains": 1, "seed": 7}
N_SIMS, NOBS = 100, 40


@pytest.fixture(scope="module")
def pool():
    """Two worker processes kept for the whole module: each compiles the fitting model once."""
    with ProcessPoolExecutor(
        2, mp_context=multiprocessing.get_context("spawn"), initializer=simulations.pin_blas_threads
    ) as executor:
        yield executor


@pytest.fixture(scope="module")
def calibrated(pool, tmp_path_factory):
    config = make_config(mediation_model(1), NOBS, **SETTINGS)
    return run_sbc(config, tmp_path_factory.mktemp("sbc") / "ok", N_SIMS, pool=pool, progress=False)


@pytest.fixture(scope="module")
def miscalibrated(pool, tmp_path_factory):
    config = make_config(mediation_model(2), NOBS, prior_scale_fit=0.5, **SETTINGS)
    return run_sbc(
        config, tmp_path_factory.mktemp("sbc") / "wrong", N_SIMS, pool=pool, progress=False
    )


# ---- the two outcomes ---------------------------------------------------------------------------
def test_calibrated_model_passes_the_uniformity_test(calibrated):
    ranks, summary = calibrated.ranks, calibrated.summary
    assert calibrated.verdict.calibrated, summary.sort_values("p_value").head()
    assert (ranks.error == "").all() and len(ranks) == N_SIMS
    expected = {"F=~y1", "F~X", "Y~F", "indirect: X -> F -> Y", "total: X -> Y", "defined: ind"}
    assert expected <= set(summary.quantity)
    assert set(summary.columns) >= {"quantity", "n_sims", "p_value", "test", "verdict"}
    assert (summary.n_sims == N_SIMS).all()
    # ranks lie in 0..L, L = retained (thinned) draws, below the draws sampled
    values = ranks[sorted(expected)].to_numpy(dtype=float)
    assert (values >= 0).all() and (values <= ranks.L.to_numpy()[:, None]).all()
    assert (ranks.L.to_numpy() <= SETTINGS["draws"]).all() and (ranks.thin >= 1).all()
    for name in ("ranks.csv", "sbc_summary.csv", "sbc_ecdf.png", "sbc.md"):
        assert (calibrated.out / name).stat().st_size > 0
    assert "Verdict: calibrated" in (calibrated.out / "sbc.md").read_text()


def test_halved_fitting_prior_scale_is_flagged(miscalibrated):
    summary = miscalibrated.summary
    assert not miscalibrated.verdict.calibrated
    flagged = set(summary.quantity[summary.verdict == "miscalibrated"])
    assert flagged & {"F=~y1", "F=~y2", "F=~y3", "F=~y4", "X=~x", "Y=~z"}, summary
    assert summary.set_index("quantity").loc["ALL", "verdict"] == "miscalibrated"


# ---- reproducibility, resuming, executors -----------------------------------------------------
def test_interrupted_run_resumes_to_identical_results(calibrated, pool, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(calibrated.out, copy)
    for path in sorted((copy / "sims").glob("sim_*.json"))[-3:]:
        path.unlink()
    (copy / "ranks.csv").unlink()
    config = make_config(mediation_model(1), NOBS, **SETTINGS)
    resumed = run_sbc(config, copy, N_SIMS, pool=pool, progress=False)
    pd.testing.assert_frame_equal(_ranks_only(resumed.ranks), _ranks_only(calibrated.ranks))
    pd.testing.assert_frame_equal(resumed.summary, calibrated.summary)


def test_dask_cluster_gives_the_local_ranks(calibrated, tmp_path):
    distributed = pytest.importorskip("distributed")
    config = make_config(mediation_model(1), NOBS, **SETTINGS)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        result = run_sbc(
            config,
            tmp_path / "dask",
            4,
            executor="dask",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    pd.testing.assert_frame_equal(_ranks_only(result.ranks), _ranks_only(calibrated.ranks.head(4)))


def test_other_settings_refuse_an_existing_folder(calibrated):
    config = make_config(mediation_model(1), NOBS, **{**SETTINGS, "draws": 300})
    with pytest.raises(Exception, match="other settings"):
        run_sbc(config, calibrated.out, N_SIMS, workers=1, progress=False)


def test_cli_reports_verdicts_through_exit_codes(calibrated, miscalibrated, tmp_path, capsys):
    model = tmp_path / "mediation.lav"
    for run, scale, extra, code in (
        (calibrated, 1, [], 0),
        (miscalibrated, 2, ["--prior-scale-fit", "0.5"], 1),
    ):
        model.write_text(mediation_model(scale))
        args = [
            "sbc",
            str(model),
            "--sims",
            str(N_SIMS),
            "--nobs",
            str(NOBS),
            "--out",
            str(run.out),
            "--draws",
            "200",
            "--tune",
            "200",
            "--seed",
            "7",
            *extra,
        ]
        assert main(args) == code  # every simulation is on disk: nothing is refitted
    assert "SBC verdict: miscalibrated" in capsys.readouterr().out


def test_failed_fit_is_recorded_and_the_others_go_on(monkeypatch, tmp_path):
    class FailingThird:
        def __init__(self, config):
            pass

        def run(self, index, seed):
            if index == 2:
                raise FloatingPointError("the sampler hit a singular matrix")
            rng = np.random.default_rng(seed)
            return stand_in_record(
                index, seed, {"a": int(rng.integers(100)), "b": int(rng.integers(100))}
            )

    monkeypatch.setattr(simulations, "Simulator", FailingThird)
    config = make_config(mediation_model(1), NOBS, **{**SETTINGS, "seed": 99})
    result = run_sbc(config, tmp_path / "run", 30, workers=1, progress=False)
    failed = result.ranks[result.ranks.error != ""]
    assert list(failed.sim) == [2] and "singular matrix" in failed.error.iloc[0]
    assert result.verdict.n_done == 29 and result.verdict.n_failed == 1
    assert "Failed simulations" in (tmp_path / "run" / "sbc.md").read_text()


# ---- vague default priors ------------------------------------------------------------------------
HS = "models/holzinger_swineford.lav"
HS_PRIORS = "models/holzinger_swineford.sbc_priors.yaml"


def test_vague_default_priors_are_named_by_kind(root: Path):
    hs = root / HS
    assert vague_default_priors(make_config(hs, 301)) == {
        "loadings": "normal(0,10)",
        "intercepts": "normal(0,32)",
        "variances": "gamma(1,0.5)[sd]",
    }
    study_a = make_config(root / "models" / "impulse_buying.lav", 357)
    assert vague_default_priors(study_a)["regressions"] == "normal(0,10)"
    only_loadings = '---\npriors: {loadings: "gamma(5,5)"}\n---\nF =~ y1 + y2 + y3'
    assert set(vague_default_priors(make_config(only_loadings, 50))) == {"intercepts", "variances"}
    assert vague_default_priors(make_config(mediation_model(1), 50)) == {}
    assert (
        vague_default_priors(make_config(hs, 301, priors=read_prior_file(root / HS_PRIORS))) == {}
    )


def test_cli_warns_about_vague_priors_before_running(monkeypatch, root: Path, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        print("the run starts", file=sys.stderr)
        raise KeyboardInterrupt

    monkeypatch.chdir(root)
    # the module itself: the attribute bayes_sor.sbc is the API's sbc function
    monkeypatch.setattr(sys.modules["bayes_sor.sbc.run"], "run_sbc", interrupted)
    command = ["sbc", HS, "--sims", "20", "--nobs", "301", "--out", str(tmp_path / "run")]
    assert main(command) == 130
    err = capsys.readouterr().err
    assert err.index(
        "WARNING: the model uses blavaan's vague default priors for loadings "
        "normal(0,10), intercepts normal(0,32)"
    ) < err.index("the run starts")
    assert f"--priors {HS_PRIORS} (bundled with the model)" in err
    assert main([*command, "--priors", HS_PRIORS]) == 130
    assert "WARNING" not in capsys.readouterr().err
    assert main([*command, "--priors", "missing.yaml"]) == 2
    assert "prior file 'missing.yaml' cannot be read" in capsys.readouterr().err


class PiledUpRanks:
    """A stand-in for the simulator (no fits): quantity ``a`` always ranks the truth lowest."""

    def __init__(self, config):
        pass

    def run(self, index, seed):
        return stand_in_record(index, seed, {"a": 0})


def stand_in_record(index: int, seed: int, ranks: dict[str, int]) -> dict:
    """A simulation's record as ``Simulator.run`` returns it, with these ranks (out of 99)."""
    return {
        "sim": index,
        "seed": seed,
        "L": 99,
        "thin": 1,
        "ess_min": 100.0,
        "divergences": 0,
        "fit_seconds": 0.0,
        "error": "",
        "ranks": ranks,
        "truth": {},
    }


def test_sbc_md_names_the_priors_and_warns_about_vague_ones(monkeypatch, root: Path, tmp_path):
    monkeypatch.setattr(simulations, "Simulator", PiledUpRanks)
    vague = run_sbc(make_config(root / HS, 301), tmp_path / "vague", 3, workers=1, progress=False)
    text = (vague.out / "sbc.md").read_text()
    assert "**Warning:** the model uses blavaan's vague default priors" in text
    assert "loadings `normal(0,10)`" in text
    ready = make_config(root / HS, 301, priors=read_prior_file(root / HS_PRIORS))
    text = (
        run_sbc(ready, tmp_path / "ready", 3, workers=1, progress=False).out / "sbc.md"
    ).read_text()
    assert "Warning" not in text and "loadings `gamma(4,5)`" in text


def test_flagged_verdict_recalls_the_vague_priors(monkeypatch, root: Path, tmp_path, capsys):
    monkeypatch.setattr(simulations, "Simulator", PiledUpRanks)
    monkeypatch.chdir(root)
    command = ["sbc", HS, "--sims", "20", "--nobs", "301", "--workers", "1", "--no-progress"]
    assert main([*command, "--out", str(tmp_path / "vague")]) == 1
    assert "a: p = " in (out := capsys.readouterr().out) and "vague default priors" in out
    assert main([*command, "--out", str(tmp_path / "ready"), "--priors", HS_PRIORS]) == 1
    assert "vague" not in capsys.readouterr().out


# ---- pieces --------------------------------------------------------------------------------------
def test_seeds_are_spawned_and_stable_when_a_run_grows():
    assert simulation_seeds(5, 10) == simulation_seeds(5, 20)[:10]
    assert len(set(simulation_seeds(5, 1000))) == 1000


def test_cached_prior_sampler_equals_prior_draw():
    pt = build_partable(mediation_model(1))
    sampler = PriorSampler(pt)
    for seed in (1, 12345):
        np.testing.assert_array_equal(sampler(seed), prior_draw(pt, seed))


def test_compiled_once_fit_equals_a_fresh_fit():
    """Swapping data and starting point into the compiled model gives, draw for draw, the
    posterior that ``sampling.sample`` gives after building the model for those data."""
    pt = build_partable(
        '---\npriors: {loadings: "halfnormal(1)", intercepts: "normal(0,1)", '
        'variances: "gamma(4,8)[sd]"}\n---\nF =~ y1 + y2 + y3'
    )
    draw = PriorSampler(pt)
    first, _ = simulate_dataset(pt, draw(1), 30, seed=1)
    second, _ = simulate_dataset(pt, draw(2), 30, seed=2)
    fitter = simulations.Fitter(pt, "auto", "nutpie", 30, example=first)
    settings = SamplerSettings(chains=1, draws=100, tune=100, seed=5, progressbar=False, cores=1)
    swapped = fitter.fit(second, settings)["posterior"]["par"].values
    fresh = sample(pymc_model(pt, second), settings)["posterior"]["par"].values
    np.testing.assert_array_equal(swapped, fresh)


def test_prior_draws_are_valid_models(root: Path):
    """Residual correlations drawn independently can form no covariance matrix (56 % of
    PoliticalDemocracy's prior draws): SBC redraws those and keeps every other draw."""
    pd_model = root / "models" / "political_democracy.lav"
    priors = read_prior_file(root / "models" / "political_democracy.sbc_priors.yaml")
    table = build_partable(pd_model.read_text(), priors=priors)
    rep, draw = representation(table), PriorSampler(table)

    def smallest_eigenvalue(par):
        return np.linalg.eigvalsh(extend(par)[rep.theta]).min()

    seeds = simulation_seeds(1, 20)
    invalid = [s for s in seeds if smallest_eigenvalue(draw(s)) <= 0]
    assert len(invalid) >= 5
    for seed in seeds:
        chosen = simulations.valid_prior_draw(draw, rep, seed)
        assert smallest_eigenvalue(chosen) >= 0
        if seed not in invalid:
            np.testing.assert_array_equal(chosen, draw(seed))
    with pytest.raises(ModelSpecError, match="beta\\(3,3\\)"):
        simulations.valid_prior_draw(lambda seed: draw(invalid[0]), rep, 1)


def test_latent_scores_are_those_behind_the_simulated_data():
    pt = build_partable(mediation_model(1))
    rep = representation(pt)
    par = PriorSampler(pt)(3)
    par[np.isin(np.arange(len(par)), rep.theta[rep.theta != rep.zero])] = 1e-12
    data, eta = simulate_dataset(pt, par, 50, seed=11)
    ext = extend(par)
    np.testing.assert_allclose(data.to_numpy(), ext[rep.nu] + eta @ ext[rep.lambda_].T, atol=1e-4)


def test_prior_scale_fit_scales_free_loading_priors_only():
    pt = build_partable(mediation_model(1))
    scaled = scale_loading_priors(pt, 0.5).table
    loadings = scaled.op == "=~"
    assert set(scaled.prior[loadings]) == {"halfnormal(0.5)"}
    assert scaled.prior[~loadings].equals(pt.table.prior[~loadings])


def test_uniform_ranks_pass_and_piled_up_ranks_fail():
    rng = np.random.default_rng(0)
    n = 200
    ranks = pd.DataFrame(
        {
            "sim": range(n),
            "L": 99,
            "error": "",
            "flat": rng.integers(0, 100, n),
            "too_narrow": np.where(rng.random(n) < 0.5, 0, 99),
        }
    )
    summary, verdict = summary_frame(pit_values(ranks, ["flat", "too_narrow"], seed=1))
    verdicts = summary.set_index("quantity").verdict
    assert verdicts["flat"] == "ok" and verdicts["too_narrow"] == "miscalibrated"
    assert not verdict.calibrated


def test_holm_adjustment():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])


def _ranks_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Everything but timings, which differ between runs."""
    return frame.drop(columns=["fit_seconds", "sim_seconds", "cpu_seconds"]).reset_index(drop=True)


# ---- slow: the Study A model -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("ordinal", [None, "all"], ids=["continuous", "ordinal"])
def test_study_a_model_is_calibrated(root: Path, tmp_path, ordinal: str | None):
    """Study A (conditional likelihood, latent interaction): 200 simulations at N = 357, with
    continuous items and as ordered probit on every item (about 25 and 80 minutes on 2 cores)."""
    config = make_config(
        study_a_model(root),
        357,
        draws=500,
        tune=500,
        chains=1,
        ordinal=ordinal,
        likelihood="conditional",  # auto takes the quadrature one for continuous items
    )
    result = run_sbc(config, tmp_path / "study_a", 200, progress=False)
    assert result.verdict.n_failed == 0
    assert result.verdict.calibrated, result.summary.sort_values("p_value").head(10)


@pytest.mark.slow
def test_bundled_model_with_its_sbc_ready_priors_is_calibrated(
    monkeypatch, root: Path, tmp_path, capsys
):
    """The README's sbc command on Holzinger-Swineford (marginal likelihood): 100 simulations
    at N = 301, about 2-3 minutes on 2 cores."""
    monkeypatch.chdir(root)
    code = main(
        [
            "sbc",
            HS,
            "--priors",
            HS_PRIORS,
            "--sims",
            "100",
            "--nobs",
            "301",
            "--out",
            str(tmp_path / "hs"),
            "--no-progress",
        ]
    )
    out = capsys.readouterr()
    assert "WARNING" not in out.err
    assert code == 0, out.out
    assert "SBC verdict: calibrated (0 quantities flagged; 100 simulations, 0 failed)" in out.out
