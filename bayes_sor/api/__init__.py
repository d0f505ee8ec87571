"""The Python API for notebooks and scripts: fit, inspect, check, compare and report.

:mod:`bayes_sor.api.functions` holds the calls (``fit``, ``load``, ``compare``,
``compare_models``, ``simulate``, ``sbc``), :mod:`bayes_sor.api.fitted` the fitted model they
return and :mod:`bayes_sor.api.display` its summaries; ``import bayes_sor as bs`` exports them.
The command line (:mod:`bayes_sor.cli`) is a layer over these.
"""
