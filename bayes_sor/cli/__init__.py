"""The command line (``bayes_sor`` script, ``python -m bayes_sor``)."""

from bayes_sor.cli.main import main, run

__all__ = ["main", "run"]
