"""Comparison with other methods: ML SEM, composite OLS/PROCESS, published values."""
