"""Points at which the model tests evaluate a PyMC model's variables."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def jittered_point(model, seed: int, spread: float = 0.3) -> dict[str, np.ndarray]:
    """The model's initial point with every value moved by a uniform(-spread, spread) draw:
    a point where no parameter sits at a special value (zero, one) that would hide an error."""
    rng = np.random.default_rng(seed)
    return {
        k: v + rng.uniform(-spread, spread, np.shape(v)) for k, v in model.initial_point().items()
    }


def value_function(model, outputs: Sequence, mode=None) -> Callable[[dict], list]:
    """A function of a point (value variables by name) returning the values of ``outputs``,
    the model's variables or expressions of them."""
    return model.compile_fn(
        model.replace_rvs_by_values(list(outputs)),
        inputs=model.value_vars,
        point_fn=True,
        on_unused_input="ignore",
        mode=mode,
    )
