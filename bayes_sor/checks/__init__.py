"""Model checks on a run: log-likelihood, predictive checks, fit indices, reliability,
sensitivity, LOO comparison."""
