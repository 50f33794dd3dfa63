"""Raw data: the challenge layout, image archives, importers and the synthetic sample."""
