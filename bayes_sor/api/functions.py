"""The calls of the Python API: every command of ``python -m bayes_sor`` as a function whose
result holds DataFrames and matplotlib figures and which writes files only when asked.

``import bayes_sor as bs`` exports them: ``bs.fit``, ``bs.load``, ``bs.compare``,
``bs.compare_models``, ``bs.simulate``, ``bs.sbc``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

# a module whose function has the name of ours: called by its full name
import bayes_sor.runs.fit
from bayes_sor.api.fitted import ConvergenceWarning, FittedModel
from bayes_sor.checks.loo_comparison import loo_comparison_check
from bayes_sor.checks.result import CheckResult, write_result
from bayes_sor.comparison.compare import check_counts, comparison_data, method_table
from bayes_sor.comparison.compare_report import comparison_result
from bayes_sor.data.csv_reader import read_csv
from bayes_sor.data.scale import parse_scale
from bayes_sor.errors import BayesSORError
from bayes_sor.posterior.effects import parse_moderator_values
from bayes_sor.posterior.hypotheses import DEFAULT_ROPE
from bayes_sor.runs.fit import read_model
from bayes_sor.runs.rundir import load_run
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.sampling.stages import StageReporter, quiet
from bayes_sor.spec.partable import ParTable, build_partable, read_prior_file

if TYPE_CHECKING:
    from bayes_sor.sbc.run import SBCResult

#: PyTensor's "could not link to a BLAS" warning: sampling runs on its numba backend (through
#: nutpie), which does not use the C backend's BLAS, so the warning would only mislead
BLAS_WARNING = "PyTensor could not link to a BLAS"


def fit(
    model: str | Path | ParTable,
    data: str | Path | pd.DataFrame | None = None,
    *,
    cov: str | Path | pd.DataFrame | None = None,
    cor: str | Path | pd.DataFrame | None = None,
    sd: str | Path | pd.DataFrame | None = None,
    nobs: int | list[int] | None = None,
    likelihood: str = "auto",
    missing: str = "model",
    identification: str | None = None,
    ordinal: str | list[str] | None = None,
    scale: str | None = None,
    sampler: str = SamplerSettings.sampler,
    chains: int = SamplerSettings.chains,
    draws: int | None = SamplerSettings.draws,
    tune: int | None = SamplerSettings.tune,
    seed: int = SamplerSettings.seed,
    target_accept: float | None = SamplerSettings.target_accept,
    ci: float = 0.95,
    hdi: bool = False,
    prior_scale: float = 1.0,
    moderator_values: dict[str, list[float]] | list[str] | None = None,
    latent_scores: str | None = None,
    group: str | None = None,
    group_equal: list[str] | str | None = None,
    group_partial: list[str] | str | None = None,
    save_latent: bool = False,
    rope: float = DEFAULT_ROPE,
    progress: bool = False,
    out: str | Path | None = None,
    force: bool = False,
    report: bool = True,
    stage: StageReporter = quiet,
) -> FittedModel:
    """Fit a Bayesian SEM to survey answers (``python -m bayes_sor fit``).

    Every option of the command is a keyword of the same name (``--target-accept`` is
    ``target_accept``; ``--no-progress`` is ``progress=False``, ``--no-report`` is
    ``report=False``). A fit that fails a convergence check is returned all the same: its
    verdict is ``converged`` / ``diagnostics``, and one :class:`ConvergenceWarning` names the
    failed checks.

    Parameters
    ----------
    model : str, pathlib.Path or ParTable
        A lavaan-syntax model file, the model text itself, or a parameter table.
    data : str, pathlib.Path or pandas.DataFrame, optional
        The item answers (a CSV file or a DataFrame), one column per item.
    cov, cor, sd : str, pathlib.Path or pandas.DataFrame, optional
        Instead of ``data``: a covariance matrix, or a correlation matrix (with the items'
        SDs, else a standardised analysis); needs ``nobs``. No mean structure.
    nobs : int or list of int, optional
        The sample size behind ``cov`` / ``cor``; with ``group``, one per group (the matrices
        stacked in one file with the group column, groups in order of first appearance).
    likelihood : {"auto", "marginal", "conditional", "quadrature"}
        ``auto`` integrates the latent variables out whenever the model is linear with
        continuous items (``marginal``), the moderator of a latent interaction with one
        exogenous moderator, continuous items and one group (``quadrature``), else samples
        every respondent's latent scores (``conditional``).
    missing : {"model", "listwise", "refuse"}
        Missing answers modelled (no respondent dropped), dropped listwise, or refused.
    identification : {"std.lv", "marker"}, optional
        Latent scaling (default: the model file's, else ``std.lv``).
    ordinal : str or list of str, optional
        ``"all"`` or the items to model as ordered categories.
    scale : str, optional
        The answers' Likert range (``"1-7"``) or ``"none"`` (default: the model file's).
    sampler : {"nutpie", "pymc"}
    chains, draws, tune : int
        Chains, draws per chain after tuning, tuning steps (draws and tuning steps unset: 2000
        and 1000, 600 and 400 for a one-group model with ordinal items, 1000 and 1000 for the
        quadrature likelihood).
    seed : int
    target_accept : float
        0.9 unless given (0.85 for a one-group model with ordinal items, 0.8 for the
        quadrature likelihood).
    ci : float
        Interval probability of every table.
    hdi : bool
        Highest-density instead of equal-tailed intervals.
    prior_scale : float
        Every default prior widened by this factor (a direct prior-sensitivity check).
    moderator_values : dict or list of str, optional
        Conditional indirect effects also at these values of each moderator, in its own units:
        ``{"W": [-0.5, 0.6]}`` or the command line's ``["W=-0.5,0.6"]``.
    latent_scores : {"auto", "centred", "non-centred"}, optional
        Conditional likelihood: how the latent scores are sampled (the same posterior).
    group : str, optional
        The data column that splits the respondents into groups (a multiple-group model,
        lavaan's ``group=``), each with its own parameters.
    group_equal : str or list of str, optional
        The kinds made one across groups (lavaan's ``group.equal``: ``"loadings"``,
        ``"intercepts"``, ...), as a list or comma-separated.
    group_partial : str or list of str, optional
        Rows exempt from ``group_equal`` (lavaan's ``group.partial``: ``"visual=~x2"``).
    save_latent : bool
        Keep the latent scores in the posterior.
    rope : float
        Half-width of the region of practical equivalence of the hypotheses (std.all scale).
    progress : bool
        Show the sampler's progress bar.
    out : str or pathlib.Path, optional
        Also save the run folder there (:meth:`FittedModel.save`).
    force : bool
        With ``out``: replace an existing run there.
    report : bool
        With ``out``: also write the report.
    stage : callable
        Told as each stage begins (the command line prints them).

    Returns
    -------
    FittedModel
        The posterior (``idata``), tables (``estimates``, ``effects``, ``hypotheses``), the
        convergence verdict, checks, plots and ``save`` / ``report``.

    Raises
    ------
    ModelSyntaxError, ModelSpecError, DataError, BayesSORError
        Bad input, with the command line's message.
    """
    if isinstance(moderator_values, list):
        moderator_values = parse_moderator_values(moderator_values)
    settings = SamplerSettings(
        sampler=sampler,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        target_accept=target_accept,
        progressbar=progress,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=BLAS_WARNING)
        result = bayes_sor.runs.fit.fit(
            model,
            data,
            likelihood=likelihood,
            identification=identification,
            ordinal=ordinal,
            scale=scale,
            missing=missing,
            settings=settings,
            ci_prob=ci,
            hdi=hdi,
            save_latent=save_latent,
            cov=cov,
            cor=cor,
            sd=sd,
            nobs=nobs,
            prior_scale=prior_scale,
            moderator_values=moderator_values,
            latent_scores=latent_scores,
            group=group,
            group_equal=group_equal,
            group_partial=group_partial,
            stage=stage,
        )
    fitted = FittedModel.from_fit(result, _model_name(model), rope)
    if not fitted.converged:
        problems = fitted.diagnostics.problems
        warnings.warn(
            ConvergenceWarning(
                f"{len(problems)} convergence check(s) failed: " + "; ".join(problems)
            ),
            stacklevel=2,
        )
    if out is not None:
        fitted.save(out, force=force, report=report, stage=stage)
    return fitted


def _model_name(model: str | Path | ParTable) -> str:
    """A model file's name without ``.lav``; ``"model"`` for model text or a table."""
    if isinstance(model, Path) or (isinstance(model, str) and "\n" not in model):
        return Path(model).stem
    return "model"


def load(path: str | Path, rope: float | None = None) -> FittedModel:
    """Open a run folder written by ``python -m bayes_sor fit`` or :meth:`FittedModel.save`.

    Parameters
    ----------
    path : str or pathlib.Path
        The run folder (with ``posterior.nc``).
    rope : float, optional
        Judge the hypotheses with this ROPE half-width instead of the run's.

    Returns
    -------
    FittedModel
    """
    run = load_run(path, rope)
    return FittedModel(run, run.path.name)


def compare(
    fitted: FittedModel,
    data: str | Path | pd.DataFrame,
    *,
    published: str | Path | None = None,
    controls: list[str] | None = None,
    boot: int = 1000,
    process_boot: int = 5000,
    workers: int = min(4, os.cpu_count() or 1),
    seed: int = 20261124,
    missing: str = "model",
    out: str | Path | None = None,
) -> CheckResult:
    """Bayesian vs ML SEM vs the study's composite OLS / PROCESS vs published values
    (``python -m bayes_sor compare --run``).

    Parameters
    ----------
    fitted : FittedModel
        A saved fit (the comparison reads its run folder).
    data : str, pathlib.Path or pandas.DataFrame
        The answers the model was fitted to, with any control columns.
    published : str or pathlib.Path, optional
        Published values (YAML or CSV).
    controls : list of str, optional
        Control columns for the study's regressions (categorical ones dummy-coded).
    boot, process_boot : int
        ML and PROCESS-style bootstrap resamples.
    workers : int
        Processes for the ML bootstrap (the results do not depend on it).
    seed : int
        Seed of the bootstraps.
    missing : {"model", "listwise", "refuse"}
    out : str or pathlib.Path, optional
        Also write ``comparison.csv`` / ``.md`` / ``.png`` there and the section into the
        run's report.

    Returns
    -------
    CheckResult
        ``tables["comparison.csv"]``, ``figures["comparison.png"]``, the document
        (``documents["comparison.md"]``), ``passed``: no row flagged.
    """
    check_counts(boot, process_boot, workers)
    run = load_run(fitted.require_saved("the comparison"), fitted.run.rope)
    inputs = comparison_data(run.partable, _path_or_frame(data), controls or [], published, missing)
    table, methods = method_table(run, inputs, boot, process_boot, seed, workers)
    result = comparison_result(table, methods, model_name=fitted.name)
    if out is not None:
        write_result(result, Path(out), run_dir=run.path)
    return result


def _path_or_frame(data: str | Path | pd.DataFrame) -> Path | pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else Path(data)


def compare_models(*fitted: FittedModel) -> CheckResult:
    """LOO comparison of saved fits to the same data (``python -m bayes_sor compare-models``):
    ELPD differences, Pareto k, stacking weights.

    Parameters
    ----------
    *fitted : FittedModel
        Two or more saved fits.

    Returns
    -------
    CheckResult
        ``tables["model_comparison.csv"]`` (best model first) and its ``text``.
    """
    return loo_comparison_check([f.require_saved("the model comparison") for f in fitted])


@dataclass(frozen=True)
class Simulation:
    """Simulated answers and the parameter values they were drawn at.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per respondent, one column per item.
    truth : pandas.DataFrame
        ``lhs, op, rhs, value`` of every parameter (``simulate --truth-out``).
    """

    data: pd.DataFrame
    truth: pd.DataFrame


def simulate(
    model: str | Path,
    nobs: int,
    *,
    seed: int = 1,
    truth: str | Path | pd.DataFrame | None = None,
    scale: str | None = None,
    identification: str | None = None,
    ordinal: str | list[str] | None = None,
) -> Simulation:
    """Draw survey answers from a model (``python -m bayes_sor simulate``).

    Parameters
    ----------
    model : str or pathlib.Path
        A model file or model text.
    nobs : int
        Respondents.
    seed : int
    truth : str, pathlib.Path or pandas.DataFrame, optional
        Parameter values (``lhs, op, rhs, value``); default: a draw from the priors.
    scale : str, optional
        Likert range (``"1-7"``; answers are whole numbers) or ``"none"`` (continuous scores);
        default: the model file's.
    identification : {"std.lv", "marker"}, optional
    ordinal : str or list of str, optional

    Returns
    -------
    Simulation
    """
    # simulating and SBC build PyMC models: PyMC (~0.3 s) loads only for them, so that a
    # fit of a recorded model build never imports it
    import bayes_sor.model.simulate
    from bayes_sor.model.simulate import prior_draw, scale_thresholds, truth_table, truth_vector

    partable = build_partable(read_model(model), identification=identification, ordinal=ordinal)
    if nobs < 1:
        raise BayesSORError("--nobs must be at least 1")
    likert = parse_scale(scale or partable.options.get("scale"))
    partable = scale_thresholds(partable, likert)
    if truth is None:
        par = prior_draw(partable, seed)
    else:
        par = truth_vector(partable, truth if isinstance(truth, pd.DataFrame) else read_csv(truth))
    data = bayes_sor.model.simulate.simulate(partable, par, nobs, seed, scale=likert)
    if likert is not None:
        data = data.astype(int)
    return Simulation(data, truth_table(partable, par))


def sbc(
    model: str | Path,
    nobs: int,
    out: str | Path,
    sims: int = 200,
    *,
    priors: str | Path | dict[str, str] | None = None,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    pool: object | None = None,
    progress: bool = True,
    **options,
) -> SBCResult:
    """Simulation-based calibration (``python -m bayes_sor sbc``): prior draws -> data ->
    fits -> rank tests. The folder ``out`` is written as it runs; calling again resumes it.

    Parameters
    ----------
    model : str or pathlib.Path
        A model file or model text.
    nobs : int
        Respondents per simulated data set.
    out : str or pathlib.Path
        The SBC folder.
    sims : int
        Simulations.
    priors : str, pathlib.Path or dict, optional
        Priors by parameter kind over the model header's (a YAML file as ``--priors``, or
        the mapping itself); give priors on the answers' scale.
    workers : int, optional
        Local worker processes (default: all cores; 1 runs in this process).
    executor : {"local", "dask"}
    scheduler : str, optional
        A Dask scheduler's address (with ``executor="dask"``).
    pool : executor, optional
        A process pool or Dask client the caller keeps.
    progress : bool
        A line per finished simulation.
    **options
        ``likelihood``, ``sampler``, ``identification``, ``ordinal``, ``draws``, ``tune``,
        ``chains``, ``target_accept``, ``seed``, ``prior_scale_fit`` as the command's options.

    Returns
    -------
    SBCResult
        ``ranks``, ``summary`` (one row per quantity) and ``verdict``.
    """
    # SBC builds PyMC models: PyMC (~0.3 s) loads only for it (see simulate)
    from bayes_sor.sbc.run import make_config, run_sbc, vague_prior_warning

    if isinstance(priors, str | Path):
        priors = read_prior_file(priors)
    config = make_config(model, nobs, priors=priors, **options)
    model_file = Path(model) if _model_name(model) != "model" else None
    warning = vague_prior_warning(config, model_file)
    if warning:
        warnings.warn(warning, stacklevel=2)
    return run_sbc(
        config,
        out,
        sims,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
        pool=pool,
        progress=progress,
    )
