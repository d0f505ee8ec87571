"""What a built model tells sampling and the later stages, in a module without PyMC: a fit
whose model was built before loads its compiled model from the record of that build
(:mod:`bayes_sor.sampling.nutpie_cache`) and never imports PyMC (~0.3 s with the build)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bayes_sor.spec.matrices import Representation

if TYPE_CHECKING:
    import pymc as pm


@dataclass
class BuiltModel:
    """A PyMC model with what sampling and later stages need to know about it."""

    #: ``None`` for a model known only from the record of its build (no PyMC graph)
    model: pm.Model | None
    likelihood: str
    representation: Representation
    initial_values: dict[str, np.ndarray]
    #: latents whose scores the conditional likelihood samples centred (the rest non-centred)
    centred_latents: list[str] = field(default_factory=list)
    #: the sampler's latent-score variables (:func:`bayes_sor.model.latent.raw_latent_names`),
    #: which a run folder leaves out unless latent scores are asked for
    sampled_latents: list[str] = field(default_factory=list)
    #: its ordinal thresholds are sampled standardised (a one-group model with ordinal
    #: items): the sampler's defaults are :data:`~bayes_sor.sampling.samplers.ORDINAL_DEFAULTS`
    standardised_thresholds: bool = False
