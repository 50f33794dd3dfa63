"""Production monitoring: privacy-free input profiles and drift detection against the training data."""
