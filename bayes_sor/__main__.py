"""``python -m bayes_sor``: the command-line front door."""

from bayes_sor.cli import run

run()
