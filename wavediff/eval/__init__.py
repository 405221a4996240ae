"""Objective evaluation: spectral distances, plots (and, with the eval extra, more metrics)."""
