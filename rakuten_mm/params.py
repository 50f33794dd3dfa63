"""Reading the pipeline's parameters from params.yaml."""

from pathlib import Path

import yaml


def load_params(path: str | Path = "params.yaml") -> dict:
    """Return the whole params.yaml as a dict."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)
