"""``python -m bayes_sor``: the command-line front door."""

import sys

from bayes_sor.cli import main

sys.exit(main())
