"""``python -m bayes_sor``: the command-line front door."""

from bayes_sor.cli.main import run

run()
