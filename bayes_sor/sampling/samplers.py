"""Run NUTS on a built model: nutpie (default, numba backend) or PyMC's own NUTS."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import xarray as xr

from bayes_sor.errors import ModelSpecError
from bayes_sor.model.built import BuiltModel
from bayes_sor.sampling.nutpie_cache import compile_pymc_model, load_nutpie, recorded_model
from bayes_sor.sampling.stages import StageReporter, quiet
from bayes_sor.spec.matrices import Representation

SAMPLERS = ("nutpie", "pymc")
#: nutpie's mass-matrix adaptations; ``auto`` picks one by likelihood (:func:`nutpie_options`)
ADAPTATIONS = ("auto", "diag", "low_rank")
#: what a fit says before compiling a model graph not in the cache (benchmarks/RESULTS.md:
#: 15-60 s for a small marginal model, 1.5-4 minutes for Study A on two busy cores)
FIRST_COMPILE = (
    "not cached, compiling (a model's first run: up to a few minutes; its later "
    "runs load it in seconds)"
)
#: what the record of a build keeps of its :class:`BuiltModel` besides the compiled model
RECORDED_FACTS = ("likelihood", "centred_latents", "sampled_latents", "standardised_thresholds")
#: attributes ArviZ and PyMC stamp on a trace that differ between runs of the same seed
RUN_SPECIFIC_ATTRS = ("created_at", "sampling_time")


#: draws per chain, tuning steps and target acceptance of a fit that leaves them unset
DEFAULTS = {"draws": 2000, "tune": 1000, "target_accept": 0.9}
#: the same for a one-group model with ordinal items, whose thresholds are sampled
#: standardised (:func:`bayes_sor.model.conditional._uncentre`): nutpie's adaptation has
#: settled well within its own default of 400 tuning steps there, and the draws mix fast
#: enough for the gate with fewer of them (benchmarks/RESULTS.md, "Study A ordinal by
#: default"). Multiple-group models keep :data:`DEFAULTS`: not measured.
ORDINAL_DEFAULTS = {"draws": 600, "tune": 400, "target_accept": 0.85}
#: the same for the quadrature likelihood (no latent score sampled: a small, smooth posterior,
#: sampled with the low-rank mass matrix, :func:`nutpie_adaptation`): at 4 x 1000 draws after
#: 500 tuning steps at target acceptance 0.8, Study A's fits had min bulk ESS 2849-3185 (4 seeds)
#: and issue 23's three-factor N = 2000 model's 7244-7377 (3 seeds), the same as after 1000
#: tuning steps, in 0.8x the CPU seconds (benchmarks/RESULTS.md, section 6.5)
QUADRATURE_DEFAULTS = {"draws": 1000, "tune": 500, "target_accept": 0.8}


@dataclass(frozen=True)
class SamplerSettings:
    """What NUTS is asked to do; recorded in the posterior's attributes. ``draws``, ``tune``
    and ``target_accept`` left ``None`` take the model's defaults (:meth:`for_model`)."""

    sampler: str = "nutpie"
    chains: int = 4
    draws: int | None = None
    tune: int | None = None
    seed: int = 20261124
    target_accept: float | None = None
    progressbar: bool = True
    cores: int | None = None
    adaptation: str = "auto"

    def for_model(self, built: BuiltModel) -> SamplerSettings:
        """These settings with the unset ones at ``built``'s defaults: :data:`ORDINAL_DEFAULTS`
        where its thresholds are sampled standardised, :data:`QUADRATURE_DEFAULTS` for the
        quadrature likelihood, else :data:`DEFAULTS`."""
        if built.standardised_thresholds:
            chosen = ORDINAL_DEFAULTS
        elif built.likelihood == "quadrature":
            chosen = QUADRATURE_DEFAULTS
        else:
            chosen = DEFAULTS
        return replace(self, **{k: v for k, v in chosen.items() if getattr(self, k) is None})

    def validate(self) -> None:
        """Refuse settings NUTS cannot use (unset ones are checked once set, :meth:`for_model`)."""
        if self.sampler not in SAMPLERS:
            raise ModelSpecError(f"unknown sampler {self.sampler!r}; use one of {SAMPLERS}")
        if self.adaptation not in ADAPTATIONS:
            raise ModelSpecError(
                f"unknown adaptation {self.adaptation!r}; use one of {ADAPTATIONS}"
            )
        draws = 1 if self.draws is None else self.draws
        tune = 1 if self.tune is None else self.tune
        if min(self.chains, draws) < 1 or tune < 0:
            raise ModelSpecError("--chains and --draws must be at least 1, --tune at least 0")
        if self.sampler == "nutpie" and tune < 1:
            raise ModelSpecError(
                "nutpie needs at least one tuning step: give --tune 1 or more "
                "(or --sampler pymc for no tuning)"
            )
        if not 0 <= self.seed < 2**64:
            raise ModelSpecError(
                f"--seed must be a whole number from 0 to 2^64 - 1, got {self.seed}"
            )
        if self.target_accept is not None and not 0 < self.target_accept < 1:
            raise ModelSpecError("--target-accept must lie between 0 and 1, e.g. 0.9")


def recorded_build(
    build: str | None, representation: Representation, stage: StageReporter = quiet
) -> tuple[BuiltModel, object] | None:
    """The model that the call ``build`` (:func:`~bayes_sor.sampling.nutpie_cache.build_key`)
    built for an earlier nutpie fit, without PyMC: a :class:`BuiltModel` without its PyMC
    graph (``model`` ``None``, no ``initial_values``; ``representation``: the table's, as the
    build's) and nutpie's compiled model, for :func:`sample`'s ``compiled``; ``None`` when the
    call has no usable record (build the model then)."""
    recorded = recorded_model(
        build,
        facts=RECORDED_FACTS,
        announce=lambda facts: stage(_compiling(facts["likelihood"], cached=True)),
    )
    if recorded is None:
        return None
    compiled, facts = recorded
    return BuiltModel(None, representation=representation, initial_values={}, **facts), compiled


def _compiling(likelihood: str, cached: bool) -> str:
    return f"compiling the {likelihood} model for nutpie: " + (
        "cached" if cached else FIRST_COMPILE
    )


def sample(
    built: BuiltModel,
    settings: SamplerSettings,
    stage: StageReporter = quiet,
    build: str | None = None,
    compiled=None,
) -> xr.DataTree:
    """Sample the posterior; returns an ArviZ DataTree with ``posterior`` and ``sample_stats``.

    Chains start from the data-based values of
    :func:`bayes_sor.model.start_values.initial_values`, without
    jitter: a jittered start can put a loading on the wrong side of zero, and the chain then
    explores a sign-flipped copy of the posterior. ``stage`` is told when compiling (cached or
    not) and sampling begin. ``build``: the
    :func:`~bayes_sor.sampling.nutpie_cache.build_key` of the call that built ``built``, under
    which the compiled model is recorded for :func:`recorded_build`. ``compiled``: nutpie's compiled
    model of ``built`` from :func:`recorded_build` (nutpie only), not compiled again.
    """
    settings = settings.for_model(built)
    settings.validate()
    model = built.model
    cores = settings.cores or min(settings.chains, _available_cores())
    sampling = (
        f"sampling: {settings.chains} chains x {settings.draws} draws after "
        f"{settings.tune} tuning steps"
    )
    if settings.sampler == "nutpie":
        nutpie = load_nutpie()
        if compiled is None:
            compiled = compile_pymc_model(
                model,
                initial_points=built.initial_values,
                announce=lambda cached: stage(_compiling(built.likelihood, cached)),
                build=build,
                facts={name: getattr(built, name) for name in RECORDED_FACTS},
            )
        stage(sampling)
        sampler = nutpie.sample(
            compiled,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=cores,
            seed=settings.seed,
            target_accept=settings.target_accept,
            **nutpie_options(settings.adaptation, built.likelihood, compiled.n_dim),
            progress_bar=settings.progressbar,
            save_warmup=False,
            blocking=False,
        )
        try:
            trace = sampler.wait()
            if settings.progressbar:
                print(flush=True)  # nutpie's progress bar leaves its last line unterminated
            return _complete(trace, settings)
        except KeyboardInterrupt:
            # nutpie's blocking call would return the draws so far as if the run were done.
            sampler.cancel()
            raise
    stage(
        f"compiling the {built.likelihood} model for PyMC's NUTS (C code, cached after the "
        f"first run), then {sampling}"
    )
    # PyMC (~0.3 s) loads only for its own sampler: a recorded nutpie build needs none of it
    import pymc as pm

    with model:
        trace = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=cores,
            random_seed=settings.seed,
            target_accept=settings.target_accept,
            progressbar=settings.progressbar,
            nuts_sampler="pymc",
            initvals=built.initial_values,
            init="adapt_diag",
            compute_convergence_checks=False,
        )
    return _complete(trace, settings)


#: the most sampled dimensions for which ``auto`` takes nutpie's low-rank mass matrix with its
#: own regularisation; above, with :data:`LOW_RANK_GAMMA` (:func:`nutpie_options`)
LOW_RANK_MAX_DIM = 150
#: the low-rank adaptation's eigenvalue regularisation above :data:`LOW_RANK_MAX_DIM`: with
#: nutpie's 1e-5, a two-group Study A (203 coordinates) spent 11x the CPU seconds per tuning
#: draw of the diagonal adaptation at the same number of gradients (36 s against 3.3 s for
#: one chain's 1000 tuning draws; one group, 119 coordinates: 2.0 s against 1.5 s); with 1e-2,
#: 3.3 s and the same bulk ESS (benchmarks/RESULTS.md, "Two-group Study A within 2.5x")
LOW_RANK_GAMMA = 1e-2


def nutpie_adaptation(adaptation: str, likelihood: str) -> str:
    """nutpie's mass-matrix adaptation: ``auto`` is the low-rank modified diagonal for the
    marginal and the quadrature likelihoods, else the diagonal.

    Their posteriors are small (tens to a few hundred parameters) and correlated (the
    intercepts of a factor's items, a loading and its item's residual variance): the low-rank
    correction doubled the HS CFA's minimum ESS per gradient (benchmarks/RESULTS.md, section
    4), and gave the quadrature likelihood 2.7x (Study A) and 4x (issue 23's three-factor
    model) the minimum bulk ESS of the diagonal at the same draws (section 6.5). With
    thousands of latent scores (conditional) it cost more than it gave (Study A ordinal: the
    same ESS per gradient, a longer warm-up).
    """
    if adaptation != "auto":
        return adaptation
    return "low_rank" if likelihood in ("marginal", "quadrature") else "diag"


def nutpie_options(adaptation: str, likelihood: str, n_dim: int) -> dict[str, object]:
    """nutpie's keyword arguments for the mass matrix: :func:`nutpie_adaptation`'s choice,
    and for a low-rank one of more than :data:`LOW_RANK_MAX_DIM` coordinates the
    regularisation :data:`LOW_RANK_GAMMA` (``n_dim``: the compiled model's sampled
    coordinates)."""
    chosen = nutpie_adaptation(adaptation, likelihood)
    options: dict[str, object] = {"adaptation": chosen}
    if chosen == "low_rank" and n_dim > LOW_RANK_MAX_DIM:
        options["mass_matrix_gamma"] = LOW_RANK_GAMMA
    return options


def _complete(trace: xr.DataTree, settings: SamplerSettings) -> xr.DataTree:
    """The trace, if every chain has every draw, without the attributes that differ between
    identical runs (so the same seed writes a byte-identical ``posterior.nc``).

    An interrupted trace (PyMC and nutpie return the draws so far after Ctrl-C) raises
    KeyboardInterrupt, so it never reaches a run folder.
    """
    sizes = trace["posterior"].sizes
    if sizes.get("chain") != settings.chains or sizes.get("draw") != settings.draws:
        raise KeyboardInterrupt
    for node in trace.subtree:
        for name in RUN_SPECIFIC_ATTRS:
            node.attrs.pop(name, None)
    return trace


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
