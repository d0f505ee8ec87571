"""bayes_sor: Bayesian reanalysis of Stimulus-Organism-Response structural equation models.

Pipeline: model syntax -> parameter table -> PyMC model -> posterior (ArviZ DataTree) ->
effects, checks and reports. See ARCHITECTURE.md.

The Python API (:mod:`bayes_sor.api`)::

    import bayes_sor as bs

    res = bs.fit("models/impulse_buying.lav", "data/impulse_buying.csv")
    res                      # convergence verdict, hypotheses, main effects
    res.effects              # effects.csv as a DataFrame; res.idata: the ArviZ DataTree
    res.ppc(), res.reliability(), res.sensitivity()
    res.plot_diagram(), res.plot_effects(), res.plot_conditional()
    res.save("reports/impulse_buying_nb")   # the run folder of ``python -m bayes_sor fit``
    bs.load("reports/impulse_buying_nb")
"""

import os

# NUTS chains run in parallel processes; a multi-threaded OpenBLAS in each of them
# oversubscribes the cores, making a fit several times slower (benchmarks/RESULTS.md).
# This must happen before numpy is first imported, hence here.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The subpackage ``bayes_sor.sbc`` first: importing it later would rebind the name ``sbc`` of
# this package from the API's function to the subpackage.
import bayes_sor.sbc  # noqa: E402, F401
from bayes_sor.api.fitted import ConvergenceWarning, FittedModel  # noqa: E402
from bayes_sor.api.functions import (  # noqa: E402
    Simulation,
    compare,
    compare_models,
    fit,
    load,
    sbc,
    simulate,
)
from bayes_sor.checks.result import CheckResult  # noqa: E402
from bayes_sor.errors import (  # noqa: E402
    BayesSORError,
    DataError,
    ModelSpecError,
    ModelSyntaxError,
    OutputError,
)
from bayes_sor.runs.fit import FitResult  # noqa: E402
from bayes_sor.spec.partable import ParTable, build_partable  # noqa: E402
from bayes_sor.spec.syntax import parse  # noqa: E402

__all__ = [
    "BayesSORError",
    "CheckResult",
    "ConvergenceWarning",
    "DataError",
    "FitResult",
    "FittedModel",
    "ModelSpecError",
    "ModelSyntaxError",
    "OutputError",
    "ParTable",
    "SBCResult",
    "Simulation",
    "build_partable",
    "compare",
    "compare_models",
    "fit",
    "load",
    "parse",
    "sbc",
    "simulate",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``SBCResult``, imported on first use: its module imports PyMC (~0.3 s), which
    ``python -m bayes_sor fit`` (this package is imported first) does without when its
    model's build was recorded by an earlier run."""
    if name != "SBCResult":
        raise AttributeError(f"module 'bayes_sor' has no attribute {name!r}")
    # see the docstring: the SBC module loads PyMC
    from bayes_sor.sbc.run import SBCResult

    return SBCResult
