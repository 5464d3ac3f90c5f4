"""Benchmarks and load generation for the speech gateway (``python -m bench``)."""
