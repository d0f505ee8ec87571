"""bayes_sor: Bayesian reanalysis of Stimulus-Organism-Response structural equation models.

Pipeline: model syntax -> parameter table -> PyMC model -> posterior (ArviZ DataTree) ->
effects, checks and reports. See ARCHITECTURE.md.
"""

import os

# NUTS chains run in parallel processes; a multi-threaded OpenBLAS in each of them
# oversubscribes the cores, making a fit several times slower (benchmarks/RESULTS.md).
# This must happen before numpy is first imported, hence here.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from bayes_sor.runs.fit import FitResult, fit  # noqa: E402
from bayes_sor.spec.partable import ParTable, build_partable  # noqa: E402
from bayes_sor.spec.syntax import parse  # noqa: E402

__all__ = ["FitResult", "ParTable", "build_partable", "fit", "parse"]
__version__ = "0.1.0"
