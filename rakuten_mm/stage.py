"""What every pipeline stage does first: logging set up, params read, paths parsed."""

import argparse
import logging

from rakuten_mm.params import load_params


def start_stage(name: str, paths: list[str], description: str,
                optional_paths: tuple[str, ...] = ()) -> tuple[dict, argparse.Namespace]:
    """Configure logging, parse the stage's path arguments and return (all params, paths).

    optional_paths are read only under some params (None when not given).
    """
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py", description=description)
    for path in paths:
        parser.add_argument(f"--{path}", required=True)
    for path in optional_paths:
        parser.add_argument(f"--{path}", default=None)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()
    return load_params(args.params), args
