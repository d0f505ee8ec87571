"""The model specification: syntax, parameter table, prior text, model matrices (no PyMC)."""
