"""Sampling: samplers, the compiled-model cache and its graph key, progress stages."""
