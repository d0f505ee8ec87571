"""Prior specifications as readable text (blavaan's notation); their PyMC distributions are
:mod:`bayes_sor.model.prior_families` (this layer does not import PyMC).

``normal(0,10)``, ``halfnormal(10)``, ``gamma(1,0.5)[sd]`` (a prior on the standard deviation,
the variance is its square), ``lognormal(0,1)``, ``exponential(1)``, ``student_t(3,0,2.5)``,
``beta(1,1)`` (for correlations: on (rho + 1) / 2, as blavaan does), ``uniform(a,b)`` and
``lkj(eta)`` (the correlation matrix of the exogenous latents).

"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bayes_sor.errors import ModelSpecError

#: family -> names of its arguments (PyMC's)
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "normal": ("mu", "sigma"),
    "halfnormal": ("sigma",),
    "gamma": ("alpha", "beta"),
    "lognormal": ("mu", "sigma"),
    "exponential": ("lam",),
    "student_t": ("nu", "mu", "sigma"),
    "beta": ("alpha", "beta"),
    "uniform": ("lower", "upper"),
    "lkj": ("eta",),
}
POSITIVE = {"halfnormal", "gamma", "lognormal", "exponential"}
_PRIOR = re.compile(r"^\s*([a-z_]+)\s*\(([^()]*)\)\s*(\[sd\])?\s*$")


@dataclass(frozen=True)
class Prior:
    """A parsed prior: family, numeric arguments, and whether it is on the SD scale."""

    family: str
    args: tuple[float, ...]
    on_sd: bool = False

    @property
    def text(self) -> str:
        args = ",".join(f"{a:g}" for a in self.args)
        return f"{self.family}({args}){'[sd]' if self.on_sd else ''}"


def parse_prior(text: str, where: str = "") -> Prior:
    """Parse prior text such as ``normal(0,10)`` or ``gamma(1,0.5)[sd]``."""
    context = f" for {where}" if where else ""
    match = _PRIOR.match(text)
    if match is None or match.group(1) not in ARGUMENTS:
        raise ModelSpecError(
            f"cannot read the prior {text!r}{context}; write e.g. 'normal(0,10)', "
            f"'gamma(1,0.5)[sd]'; families: {', '.join(ARGUMENTS)}"
        )
    family = match.group(1)
    try:
        args = tuple(float(a) for a in match.group(2).split(",") if a.strip())
    except ValueError:
        raise ModelSpecError(f"the prior {text!r}{context} has a non-numeric argument") from None
    n_args = len(ARGUMENTS[family])
    if len(args) != n_args:
        raise ModelSpecError(
            f"the prior {text!r}{context} needs {n_args} argument(s), got {len(args)}"
        )
    # Which arguments must be positive: scales and shapes, never a location.
    positive = {"normal": (1,), "lognormal": (1,), "student_t": (0, 2), "uniform": ()}.get(
        family, tuple(range(n_args))
    )
    if any(args[i] <= 0 for i in positive) or (family == "uniform" and args[0] >= args[1]):
        raise ModelSpecError(f"the prior {text!r}{context} has a non-positive scale or shape")
    return Prior(family, args, bool(match.group(3)))


def positive_version(text: str) -> str:
    """The sign-constrained version of a loading prior (``normal(0,s)`` -> ``halfnormal(s)``)."""
    prior = parse_prior(text, "a first loading")
    if prior.family in POSITIVE:
        return text
    if prior.family == "normal" and prior.args[0] == 0:
        return Prior("halfnormal", (prior.args[1],)).text
    raise ModelSpecError(
        f"the first loading of each factor is constrained positive under std.lv, so its prior "
        f"must be centred at 0 or positive; {text!r} is neither: use e.g. 'normal(0,10)'"
    )


def widen(text: str, factor: float) -> str:
    """The prior ``text`` with its scale multiplied by ``factor`` (``fit --prior-scale``).

    Unbounded families scale the variable: ``normal(0,10)`` -> ``normal(0,20)`` for 2,
    ``gamma(a,b)`` -> ``gamma(a,b/2)``, ``lognormal(m,s)`` -> ``lognormal(m+log 2,s)``. Bounded
    ones (``beta``, ``lkj`` on correlations) cannot get wider than uniform, so their concentration
    moves towards the uniform one: ``beta(1+(a-1)/2, 1+(b-1)/2)``; ``beta(1,1)`` and ``lkj(1)``
    stay as they are. ``uniform(a,b)`` keeps its bounds: they are usually the parameter's support.
    """
    if factor <= 0 or not np.isfinite(factor):
        raise ModelSpecError(f"--prior-scale must be a positive number, got {factor}")
    prior = parse_prior(text)
    a = prior.args
    match prior.family:
        case "normal":
            args = (a[0], a[1] * factor)
        case "lognormal":
            args = (a[0] + float(np.log(factor)), a[1])
        case "halfnormal":
            args = (a[0] * factor,)
        case "student_t":
            args = (a[0], a[1], a[2] * factor)
        case "gamma":
            args = (a[0], a[1] / factor)
        case "exponential":
            args = (a[0] / factor,)
        case "uniform":
            args = a
        case _:  # beta, lkj: shapes >= 1 move towards 1 (uniform) as the factor grows
            args = tuple(1 + (x - 1) / factor if x >= 1 else x for x in a)
    return Prior(prior.family, args, prior.on_sd).text
