"""Merge an overrides YAML (e.g. tests/tiny_params.yaml) into params.yaml, in place.

CI without remote credentials runs the pipeline on the tiny parameters:
    python scripts/apply_params_overrides.py tests/tiny_params.yaml
"""

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pipeline_utils import deep_merge  # noqa: E402  (one merge rule for the tests and CI)


def apply_overrides(params_path: Path, overrides_path: Path) -> dict:
    """Write params_path merged with overrides_path; return the merged params."""
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    overrides = yaml.safe_load(overrides_path.read_text(encoding="utf-8")) or {}
    merged = deep_merge(params, overrides)
    params_path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return merged


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", type=Path, help="YAML file with the keys to replace")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    apply_overrides(args.params, args.overrides)
    print(f"{args.params}: applied {args.overrides}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
