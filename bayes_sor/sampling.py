"""Run NUTS on a built model: nutpie (default, numba backend) or PyMC's own NUTS."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pymc as pm
import xarray as xr

from bayes_sor.build import BuiltModel
from bayes_sor.errors import ModelSpecError

SAMPLERS = ("nutpie", "pymc")


@dataclass(frozen=True)
class SamplerSettings:
    """What NUTS is asked to do; recorded in the posterior's attributes."""

    sampler: str = "nutpie"
    chains: int = 4
    draws: int = 2000
    tune: int = 1000
    seed: int = 20261124
    target_accept: float = 0.9
    progressbar: bool = True
    cores: int | None = None

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ModelSpecError(f"unknown sampler {self.sampler!r}; use one of {SAMPLERS}")
        if min(self.chains, self.draws) < 1 or self.tune < 0:
            raise ModelSpecError("--chains and --draws must be at least 1, --tune at least 0")
        if not 0 < self.target_accept < 1:
            raise ModelSpecError("--target-accept must lie between 0 and 1, e.g. 0.9")


def sample(built: BuiltModel, settings: SamplerSettings) -> xr.DataTree:
    """Sample the posterior; returns an ArviZ DataTree with ``posterior`` and ``sample_stats``.

    Chains start from the data-based values of :func:`bayes_sor.build.initial_values`, without
    jitter: a jittered start can put a loading on the wrong side of zero, and the chain then
    explores a sign-flipped copy of the posterior.
    """
    settings.validate()
    model = built.model
    cores = settings.cores or min(settings.chains, _available_cores())
    if settings.progressbar:
        print(f"compiling the {built.likelihood} model for {settings.sampler} (cached after the "
              "first run of a model) ...", file=sys.stderr, flush=True)
    if settings.sampler == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(
            model, backend="numba", initial_points=built.initial_values, jitter_rvs=set()
        )
        return nutpie.sample(
            compiled,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=cores,
            seed=settings.seed,
            target_accept=settings.target_accept,
            progress_bar=settings.progressbar,
            save_warmup=False,
        )
    with model:
        return pm.sample(
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


def _available_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
