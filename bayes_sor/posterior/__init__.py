"""Posterior summaries: estimates, effects, hypotheses, diagnostics, latent scores, R-squared."""
