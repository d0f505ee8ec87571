"""Prior specifications as readable text (blavaan's notation) and their PyMC distributions.

``normal(0,10)``, ``halfnormal(10)``, ``gamma(1,0.5)[sd]`` (a prior on the standard deviation,
the variance is its square), ``lognormal(0,1)``, ``exponential(1)``, ``student_t(3,0,2.5)``,
``beta(1,1)`` (for correlations: on (rho + 1) / 2, as blavaan does), ``uniform(a,b)`` and
``lkj(eta)`` (the correlation matrix of the exogenous latents).

A prior file (``sbc --priors FILE``; the bundled ``models/<name>.sbc_priors.yaml``) holds
the header option ``priors:`` alone, so the same lines can be pasted into a model's header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymc as pm
import yaml

from bayes_sor.errors import ModelSpecError

#: family -> (number of arguments, PyMC distribution, names of its arguments)
FAMILIES: dict[str, tuple[int, object, tuple[str, ...]]] = {
    "normal": (2, pm.Normal, ("mu", "sigma")),
    "halfnormal": (1, pm.HalfNormal, ("sigma",)),
    "gamma": (2, pm.Gamma, ("alpha", "beta")),
    "lognormal": (2, pm.LogNormal, ("mu", "sigma")),
    "exponential": (1, pm.Exponential, ("lam",)),
    "student_t": (3, pm.StudentT, ("nu", "mu", "sigma")),
    "beta": (2, pm.Beta, ("alpha", "beta")),
    "uniform": (2, pm.Uniform, ("lower", "upper")),
    "lkj": (1, None, ("eta",)),
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
    if match is None or match.group(1) not in FAMILIES:
        raise ModelSpecError(
            f"cannot read the prior {text!r}{context}; write e.g. 'normal(0,10)', "
            f"'gamma(1,0.5)[sd]'; families: {', '.join(FAMILIES)}"
        )
    family = match.group(1)
    try:
        args = tuple(float(a) for a in match.group(2).split(",") if a.strip())
    except ValueError:
        raise ModelSpecError(f"the prior {text!r}{context} has a non-numeric argument") from None
    n_args = FAMILIES[family][0]
    if len(args) != n_args:
        raise ModelSpecError(
            f"the prior {text!r}{context} needs {n_args} argument(s), got {len(args)}"
        )
    # Which arguments must be positive: scales and shapes, never a location.
    positive = {"normal": (1,), "lognormal": (1,), "student_t": (0, 2), "uniform": ()}.get(
        family, tuple(range(n_args)))
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


def group_rv(name: str, family: str, args: np.ndarray, dims: str) -> pm.Distribution:
    """One vector random variable for all free parameters that share a prior family.

    ``args`` has one row per parameter and one column per distribution argument, so each
    parameter keeps its own prior while the model graph stays small (one node per family).
    """
    _, dist, names = FAMILIES[family]
    kwargs = {n: args[:, i] for i, n in enumerate(names)}
    return dist(name, **kwargs, dims=dims)


def read_prior_file(path: str | Path) -> dict[str, str]:
    """Priors by parameter kind from a YAML file holding ``priors: {kind: text, ...}``."""
    from bayes_sor.partable import DEFAULT_PRIORS

    path = Path(path)
    example = "priors: {loadings: \"gamma(4,5)\", intercepts: \"normal(4,1)\"}"
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelSpecError(f"prior file {str(path)!r} cannot be read ({exc.strerror}); give "
                             "a YAML file such as models/holzinger_swineford.sbc_priors.yaml"
                             ) from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ModelSpecError(f"prior file {str(path)!r} is not valid YAML; write one line "
                             f"such as {example}") from None
    if not isinstance(content, dict) or set(content) != {"priors"} or not isinstance(
            content["priors"], dict):
        raise ModelSpecError(f"prior file {str(path)!r} must hold one key, 'priors', mapping "
                             f"parameter kinds to prior text, e.g. {example}")
    priors = content["priors"]
    unknown = sorted(str(k) for k in set(priors) - set(DEFAULT_PRIORS))
    if unknown:
        raise ModelSpecError(f"prior file {str(path)!r}: unknown parameter kind(s) {unknown}; "
                             f"the kinds are {sorted(DEFAULT_PRIORS)}")
    for kind, text in priors.items():
        parse_prior(str(text), f"{kind} in {path}")
    return {kind: str(text) for kind, text in priors.items()}
