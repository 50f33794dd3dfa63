"""Experiment tracking: logging evaluated pipeline runs and their models to MLflow (optional dependency)."""
