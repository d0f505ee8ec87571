"""The Python API behind ``python -m bayes_sor fit``: model + data -> posterior and tables."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.data.categories import add_ordinal_thresholds, category_notes
from bayes_sor.data.controls import dummies_of
from bayes_sor.data.load import Dataset, load_data
from bayes_sor.data.scale import Scale, parse_scale
from bayes_sor.data.summary_statistics import SummaryData, load_group_summary, load_summary
from bayes_sor.errors import BayesSORError, ModelSpecError
from bayes_sor.model.built import BuiltModel
from bayes_sor.model.parameterisation import centred_latents
from bayes_sor.posterior.approximate import DEVIATION_COLUMNS, invariance_deviations
from bayes_sor.posterior.diagnostics import Diagnostics, check_convergence
from bayes_sor.posterior.effects import (
    effect_draws,
    effects_dataarray,
    effects_table,
    named_moderator_values,
)
from bayes_sor.posterior.estimates import Standardizer, parameter_estimates
from bayes_sor.posterior.hypotheses import DEFAULT_ROPE, check_hypotheses, evaluate, names_groups
from bayes_sor.sampling.nutpie_cache import build_key
from bayes_sor.sampling.samplers import SamplerSettings, recorded_build, sample
from bayes_sor.sampling.stages import StageReporter, quiet
from bayes_sor.spec.groups import (
    check_group_values,
    check_groupable,
    shared_labels,
    with_groups,
)
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import (
    ParTable,
    build_partable,
    small_variance_names,
    with_dummy_controls,
    without_mean_structure,
)
from bayes_sor.spec.syntax import check_moderator_values

PACKAGES = ("bayes_sor", "pymc", "pytensor", "nutpie", "arviz", "numpy", "pandas", "xarray")
#: the call that builds a fit's model, as :func:`~bayes_sor.sampling.nutpie_cache.build_key`
#: names it (by name: a recorded build is found before, and without, importing PyMC)
BUILDER = "bayes_sor.model.build.pymc_model"


@dataclass
class FitResult:
    """Everything one fit produced; :func:`bayes_sor.report.run_report.write_run` saves it."""

    partable: ParTable
    dataset: Dataset | SummaryData
    built: BuiltModel
    idata: xr.DataTree
    estimates: pd.DataFrame
    effects: pd.DataFrame
    hypotheses: pd.DataFrame
    diagnostics: Diagnostics
    settings: SamplerSettings
    ci_prob: float
    hdi: bool
    #: approximate invariance: each group's deviation from the common value (empty without)
    deviations: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=DEVIATION_COLUMNS)
    )
    #: half-width of the ROPE ``hypotheses`` were judged with
    rope: float = DEFAULT_ROPE


def read_model(model: str | Path) -> str:
    """Model text from a path (``.lav`` file) or the text itself."""
    path = Path(model) if isinstance(model, Path) or "\n" not in str(model) else None
    if path is None:
        return str(model)
    if path.is_dir():
        raise ModelSpecError(
            f"model file {str(path)!r} is a folder; give the path of the "
            "lavaan-syntax (.lav) file in it"
        )
    if not path.is_file():
        raise ModelSpecError(
            f"model file {str(path)!r} does not exist; give the path of a "
            "lavaan-syntax file such as models/impulse_buying.lav"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelSpecError(
            f"model file {str(path)!r} cannot be read ({exc.strerror}); check its permissions"
        ) from None
    if len(raw) > 1_000_000:
        raise ModelSpecError(
            f"model file {str(path)!r} is {len(raw)} bytes: far too long for "
            "a model; check that you passed the model, not the data"
        )
    if b"\x00" in raw:
        raise ModelSpecError(f"model file {str(path)!r} is binary, not lavaan text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def provenance(
    partable: ParTable, dataset: Dataset | SummaryData, settings: SamplerSettings, likelihood: str
) -> dict[str, str]:
    """Attributes stored on the posterior so a run can be traced and repeated."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except Exception:
            versions[package] = "not installed"
    return {
        "bayes_sor_model_text": partable.text,
        "bayes_sor_data_sha256": dataset.sha256,
        "bayes_sor_data_source": dataset.source,
        "bayes_sor_n_obs": str(
            dataset.nobs if isinstance(dataset, SummaryData) else len(dataset.frame)
        ),
        "bayes_sor_seed": str(settings.seed),
        "bayes_sor_likelihood": likelihood,
        "bayes_sor_missing_method": getattr(dataset, "policy", "none (summary statistics)"),
        "bayes_sor_identification": partable.options.get("identification", "std.lv"),
        "bayes_sor_prior_scale": str(partable.options.get("prior_scale", 1.0)),
        "bayes_sor_sampler_settings": json.dumps(asdict(settings)),
        "bayes_sor_versions": json.dumps(versions),
    }


def fit(
    model: str | Path | ParTable,
    data: str | Path | pd.DataFrame | None = None,
    *,
    likelihood: str = "auto",
    identification: str | None = None,
    ordinal: list[str] | str | None = None,
    scale: Scale | str | None = None,
    missing: str = "model",
    settings: SamplerSettings | None = None,
    ci_prob: float = 0.95,
    hdi: bool = False,
    save_latent: bool = False,
    cov: str | Path | pd.DataFrame | None = None,
    cor: str | Path | pd.DataFrame | None = None,
    sd: str | Path | pd.DataFrame | None = None,
    nobs: int | list[int] | None = None,
    prior_scale: float = 1.0,
    moderator_values: dict[str, list[float]] | None = None,
    latent_scores: str | None = None,
    group: str | None = None,
    group_equal: list[str] | str | None = None,
    group_partial: list[str] | str | None = None,
    rope: float = DEFAULT_ROPE,
    stage: StageReporter = quiet,
) -> FitResult:
    """Fit a Bayesian SEM: parse, check data, build, sample, summarise, judge diagnostics.

    ``data``: raw answers; or, instead, ``cov`` (a covariance matrix) or ``cor`` (correlations,
    with ``sd`` or standardised without) and ``nobs``: the marginal likelihood of the sample
    covariance, without mean structure (:mod:`bayes_sor.data.summary_statistics`).
    ``prior_scale``: every prior chosen by kind widened by this factor
    (:func:`bayes_sor.spec.prior_text.widen`), for a direct check of prior sensitivity against
    the run with the defaults. ``moderator_values``: ``{W: [v1, v2, ...]}``, conditional
    indirect effects also at these values of each moderator (its own units; replaces the model
    header's ``moderator_values``). ``missing``:
    ``"model"`` (missing answers handled by the likelihood: case-wise over missingness patterns
    in the marginal one, answered cells only in the conditional one; no respondent dropped),
    ``"listwise"`` or ``"refuse"``. ``latent_scores``: the conditional likelihood samples the
    scores of well-measured constructs centred and the others non-centred (``"auto"``, or the
    model header's ``latent_scores``), or all ``"centred"`` / ``"non-centred"``: the same
    posterior, sampled in other coordinates (:mod:`bayes_sor.model.parameterisation`).
    ``group``: the data column that splits the respondents into groups, each with its own
    parameters except the kinds named in ``group_equal`` (lavaan's ``group.equal``) and not
    in ``group_partial`` (:mod:`bayes_sor.spec.groups`); these replace the header's ``group``,
    ``group.equal`` and ``group.partial``. ``rope``: the half-width of the hypotheses' region of
    practical equivalence (``write_run`` with the same one writes them as judged here).
    ``stage`` is told as each stage begins
    (:class:`bayes_sor.sampling.stages.Stages` prints them).
    """
    settings = settings or SamplerSettings()
    settings.validate()
    if not 0 < ci_prob < 1:
        raise BayesSORError(f"--ci must lie between 0 and 1 (e.g. 0.95), got {ci_prob}")
    partable = _checked_model(
        model, identification, ordinal, prior_scale, moderator_values, latent_scores
    )
    partable = _group_options(partable, group, group_equal, group_partial)
    if partable.options.get("group") is None:  # a group's hypotheses wait for its levels
        check_hypotheses(partable)  # a hypothesis naming no path, label or effect
    scale = _declared_scale(partable, scale)
    summary = {"cov": cov, "cor": cor, "sd": sd, "nobs": nobs}
    source = next((v for v in (data, cov, cor) if v is not None), None)
    stage("reading the data" + (f" ({source})" if isinstance(source, str | Path) else ""))
    dataset, partable = _load_inputs(partable, data, summary, scale, missing, save_latent)
    for coding in dataset.controls if isinstance(dataset, Dataset) else []:
        stage(f"control {coding.describe()}")
    stage("building the PyMC model")
    model_data = dataset if isinstance(dataset, SummaryData) else dataset.frame
    groups = None if getattr(dataset, "groups", None) is None else dataset.groups.to_numpy()
    options = {
        "likelihood": likelihood,
        "save_latent": save_latent,
        "latent_scores": latent_scores,
        "groups": groups,
    }
    # the key of this build lets a model built the same way before load without PyMC
    build = build_key(BUILDER, partable, model_data, **options)
    recorded = (
        recorded_build(build, representation(partable), stage)
        if settings.sampler == "nutpie"
        else None
    )
    built, compiled = recorded or (_build(partable, model_data, options), None)
    settings = settings.for_model(built)  # the model's own defaults for what was left unset
    idata = sample(built, settings, stage, build=build, compiled=compiled)
    stage("summarising the posterior: effects, estimates, hypotheses, diagnostics")
    posterior, effects = _posterior_with_effects(
        idata, built, partable, dataset, settings.seed, save_latent
    )
    idata["posterior"] = xr.DataTree(dataset=posterior)
    idata["observed_data"] = xr.DataTree(dataset=_observed_data(dataset, partable))
    _record_provenance(
        idata, partable, dataset, settings, built, moderator_values is not None, scale
    )
    # the estimates' std.all and the hypotheses' from the same draws, computed once
    standardizer = Standardizer(partable, posterior["par"].values)
    estimates = parameter_estimates(partable, posterior, ci_prob, hdi, standardizer)
    return FitResult(
        partable=partable,
        dataset=dataset,
        built=built,
        idata=idata,
        estimates=estimates,
        effects=effects_table(effects, ci_prob, hdi),
        hypotheses=evaluate(partable, posterior, ci_prob, rope, standardizer),
        diagnostics=check_convergence(idata, estimates, small_variance_names(partable)),
        settings=settings,
        ci_prob=ci_prob,
        hdi=hdi,
        deviations=invariance_deviations(partable, posterior, ci_prob, hdi),
        rope=rope,
    )


def _build(partable: ParTable, model_data, options: dict) -> BuiltModel:
    """The PyMC model of a build not recorded before (:data:`BUILDER`)."""
    # PyMC and the model's graph (~0.3 s) load only when no earlier fit recorded this build
    from bayes_sor.model.build import pymc_model

    return pymc_model(partable, model_data, **options)


def _checked_model(
    model: str | Path | ParTable,
    identification: str | None,
    ordinal: list[str] | str | None,
    prior_scale: float,
    moderator_values: dict[str, list[float]] | None,
    latent_scores: str | None,
) -> ParTable:
    """The parameter table, with every mistake the model alone shows raised before the data
    are read."""
    partable = (
        model
        if isinstance(model, ParTable)
        else build_partable(
            read_model(model),
            identification=identification,
            ordinal=ordinal,
            prior_scale=prior_scale,
        )
    )
    if moderator_values is not None:
        partable = replace(
            partable,
            options={
                **partable.options,
                "moderator_values": check_moderator_values(moderator_values),
            },
        )
    named_moderator_values(partable)  # a misspelt moderator fails before sampling, not after
    centred_latents(partable, None, latent_scores)  # and an unknown latent-score choice
    return partable


def _group_options(
    partable: ParTable,
    group: str | None,
    group_equal: list[str] | str | None,
    group_partial: list[str] | str | None,
) -> ParTable:
    """The table with the group options given (they replace the header's), checked before
    the data are read."""
    given = {"group": group, "group.equal": group_equal, "group.partial": group_partial}
    options = {**partable.options, **{k: v for k, v in given.items() if v is not None}}
    partable = replace(partable, options=options)
    if options.get("group") is None:
        if any(options.get(k) for k in ("group.equal", "group.partial", "approximate")):
            raise ModelSpecError(
                "group.equal and group.partial need a group column, and so does approximate: "
                "give --group COLUMN (or the header's 'group')"
            )
        check_group_values(partable, 1)
        return partable
    check_groupable(partable)
    return partable


def _declared_scale(partable: ParTable, scale: Scale | str | None) -> Scale | None:
    """The Likert range given, else the model header's ``scale`` option."""
    if scale is None:
        scale = partable.options.get("scale")
    return scale if isinstance(scale, Scale) else parse_scale(scale)


def _posterior_with_effects(
    idata: xr.DataTree,
    built: BuiltModel,
    partable: ParTable,
    dataset: Dataset | SummaryData,
    seed: int,
    save_latent: bool,
) -> tuple[xr.Dataset, xr.DataArray]:
    """The posterior plus ``effects`` per draw; latent scores kept only when asked for (drawn
    afterwards for a marginal fit). A quadrature fit draws its moderators' scores afterwards
    (all latent scores with ``save_latent``) for the moderator percentiles."""
    posterior = idata["posterior"].to_dataset()
    if built.likelihood == "quadrature":
        # posterior.scores imports the quadrature's code (PyTensor and PyMC): only for its fits
        from bayes_sor.posterior.scores import moderator_quantiles

        scores = _quadrature_scores(built, partable, posterior, dataset, seed, save_latent)
        posterior["moderator_quantiles"] = xr.DataArray(
            moderator_quantiles(scores.values, built.representation, partable),
            dims=("chain", "draw", "moderator", "quantile"),
            coords={"moderator": partable.moderators, "quantile": ["p16", "p50", "p84"]},
        )
        if save_latent:
            posterior["latent_scores"] = scores
    quantiles = (
        posterior["moderator_quantiles"].values if "moderator_quantiles" in posterior else None
    )
    effects = effects_dataarray(
        effect_draws(partable, built.representation, posterior["par"].values, quantiles),
        sample_shape=posterior["par"].shape[:2],
    )
    posterior["effects"] = effects
    if save_latent and built.likelihood == "marginal":
        posterior["latent_scores"] = _marginal_scores(built, posterior, dataset, seed)
    if not save_latent:
        posterior = posterior.drop_vars([v for v in built.sampled_latents if v in posterior])
    return posterior, effects


def _record_provenance(
    idata: xr.DataTree,
    partable: ParTable,
    dataset: Dataset | SummaryData,
    settings: SamplerSettings,
    built: BuiltModel,
    moderator_values: bool,
    scale: Scale | None,
) -> None:
    """The run's attributes: :func:`provenance`, the centred latents, the moderator values
    given, the category notes of ordinal items."""
    idata.attrs.update(provenance(partable, dataset, settings, built.likelihood))
    if partable.groups:
        idata.attrs["bayes_sor_groups"] = json.dumps(
            {
                key: partable.options[key]
                for key in ("group", "group_labels", "group.equal", "group.partial", "approximate")
            }
        )
    if built.likelihood == "conditional":
        idata.attrs["bayes_sor_centred_latents"] = json.dumps(built.centred_latents)
    if isinstance(dataset, Dataset) and dataset.controls:
        idata.attrs["bayes_sor_controls"] = json.dumps([c.describe() for c in dataset.controls])
    if moderator_values:
        idata.attrs["bayes_sor_moderator_values"] = json.dumps(partable.options["moderator_values"])
    if isinstance(dataset, Dataset) and partable.ordinal_items():
        scale_range = (scale.low, scale.high) if scale is not None else None
        idata.attrs["bayes_sor_category_notes"] = json.dumps(
            category_notes(dataset.frame, partable.ordinal_items(), scale_range)
        )


def load_answers(
    partable: ParTable, data: Path | pd.DataFrame, scale: Scale | str | None, missing: str
) -> tuple[Dataset, ParTable]:
    """The answers checked against the model (:func:`~bayes_sor.data.load.load_data`) with
    its text controls dummy-coded, and the table with those controls' dummies in their place."""
    observed = partable.observed_structural
    dataset = load_data(
        data,
        partable.indicators,
        scale=scale,
        missing=missing,
        ordinal=partable.ordinal_items(),
        observed=observed,
        latents=[f for f in partable.latents if f not in observed],
        group=partable.options.get("group"),
        reference=partable.options.get("reference"),
    )
    return dataset, with_dummy_controls(partable, dummies_of(dataset.controls))


def _load_inputs(
    partable: ParTable, data, summary: dict, scale: Scale | None, missing: str, save_latent: bool
) -> tuple[Dataset | SummaryData, ParTable]:
    """Raw answers (ordinal thresholds added from them) or a covariance matrix (intercepts
    dropped: without means they are not identified)."""
    if not any(v is not None for k, v in summary.items() if k != "nobs"):
        if data is None:
            raise BayesSORError(
                "give the data (--data), or a covariance matrix (--cov) or "
                "correlation matrix (--cor) with --nobs"
            )
        dataset, partable = load_answers(partable, data, scale, missing)
        scale_range = (scale.low, scale.high) if scale is not None else None
        # thresholds from every group's answers, before the table is repeated per group
        partable = add_ordinal_thresholds(partable, dataset.frame, scale_range)
        if dataset.group_levels:
            grouped = with_groups(partable, dataset.group_levels)
            shared = shared_labels(grouped)
            if shared:
                first = grouped.parameters.set_index("label").loc[shared[0]].iloc[0]
                n = len(dataset.group_levels)
                own = ", ".join(f"{shared[0]}_{g}" for g in range(1, n + 1))
                # lavaan's rule, silent there; here a group comparison of these paths would
                # read 0 by construction
                warnings.warn(
                    f"the label(s) {', '.join(shared)} name one parameter shared by every "
                    "group (lavaan's rule): their paths are equal across groups and their "
                    "effects' group differences are 0 by construction; give each group its "
                    f"own with c(), e.g. '{first.lhs} {first.op} c({own})*{first.rhs}'",
                    stacklevel=3,
                )
            check_hypotheses(grouped)
            if not all(names_groups(h.text, grouped) for h in grouped.hypotheses):
                warnings.warn(
                    f"hypotheses naming no [group] are evaluated in the first group "
                    f"({dataset.group_levels[0]!r}) only; effects.csv has every group's "
                    "effects and their differences",
                    stacklevel=3,
                )
            return dataset, grouped
        check_hypotheses(partable)  # one naming a coded control's path by its column's name
        return dataset, partable
    if data is not None:
        raise BayesSORError(
            "give either raw data (--data) or a summary matrix (--cov/--cor), not both"
        )
    if save_latent:
        raise BayesSORError(
            "--save-latent needs the raw answers; a covariance matrix has no respondents to score"
        )
    group = partable.options.get("group")
    if group is not None:
        dataset = load_group_summary(partable.indicators, group, **summary)
        partable = with_groups(partable, dataset.group_levels)
    else:
        dataset = load_summary(partable.indicators, **summary)
    warnings.warn(
        "summary-statistics input has no item means: the mean structure is dropped "
        "(no intercepts are estimated)",
        stacklevel=3,
    )
    return dataset, without_mean_structure(partable)


def _observed_data(dataset: Dataset | SummaryData, partable: ParTable) -> xr.Dataset:
    if isinstance(dataset, SummaryData) and dataset.group_levels:
        # each group's matrix and N: the checks work per group
        groups = dataset.group_data
        return xr.Dataset(
            {
                "sample_cov": (("item", "item_"), dataset.cov.to_numpy()),
                "group_cov": (("group", "item", "item_"), np.stack([d.cov for d in groups])),
                "group_nobs": ("group", np.array([d.nobs for d in groups])),
            },
            coords={"item": dataset.items, "item_": dataset.items, "group": dataset.group_levels},
            attrs={"n_obs": dataset.nobs, "standardized": int(dataset.standardized)},
        )
    if isinstance(dataset, SummaryData):
        return xr.Dataset(
            {"sample_cov": (("item", "item_"), dataset.cov.to_numpy())},
            coords={"item": dataset.items, "item_": dataset.items},
            attrs={"n_obs": dataset.nobs, "standardized": int(dataset.standardized)},
        )
    data = {"items": (("obs", "item"), dataset.frame.to_numpy(dtype=float))}
    if dataset.groups is not None:  # each respondent's group: the checks work per group
        data["group"] = ("obs", dataset.groups.to_numpy().astype(str))
    return xr.Dataset(
        data, coords={"obs": dataset.frame.index.to_numpy(), "item": partable.indicators}
    )


def _quadrature_scores(
    built: BuiltModel,
    partable: ParTable,
    posterior: xr.Dataset,
    dataset: Dataset,
    seed: int,
    save_latent: bool,
) -> xr.DataArray:
    """Latent scores of a quadrature fit (the moderators' only, unless ``save_latent``)."""
    # the quadrature's code imports PyTensor and PyMC: loaded only for the fits that use it
    from bayes_sor.model.quadrature import integrated_latents
    from bayes_sor.posterior.scores import quadrature_latent_scores

    rep = built.representation
    y = dataset.frame[rep.items].to_numpy(dtype=float)
    moderators_integrated = set(partable.moderators) <= set(integrated_latents(partable))
    draws = quadrature_latent_scores(
        partable,
        rep,
        posterior["par"].values,
        y,
        seed,
        integrated_only=moderators_integrated and not save_latent,
    )
    return xr.DataArray(
        draws,
        dims=("chain", "draw", "obs", "latent"),
        coords={"obs": np.arange(y.shape[0]), "latent": rep.latents},
    )


def _marginal_scores(
    built: BuiltModel, posterior: xr.Dataset, dataset: Dataset, seed: int
) -> xr.DataArray:
    """Latent scores of a marginal fit, drawn from their conditional normal per draw."""
    # posterior.scores imports the quadrature's code (PyTensor and PyMC): only when asked for
    from bayes_sor.posterior.scores import marginal_latent_scores

    rep = built.representation
    y = dataset.frame[rep.items].to_numpy(dtype=float)
    draws = marginal_latent_scores(rep, posterior["par"].values, y, seed)
    return xr.DataArray(
        draws,
        dims=("chain", "draw", "obs", "latent"),
        coords={"obs": np.arange(y.shape[0]), "latent": rep.latents},
    )
