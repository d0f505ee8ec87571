"""The PyMC backend: model graph, parameterisation, ordinal likelihood, prior families,
simulation."""
