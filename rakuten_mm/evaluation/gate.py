"""Quality gate: fail when a metric drops below its value at a git revision by more than a tolerance.

DVC compares metrics (`dvc metrics diff`) but has no pass/fail threshold (iterative/dvc#10408),
so CI calls this instead:  python -m rakuten_mm.evaluation.gate --rev main
The metric and tolerance come from the `gate:` section of params.yaml.
"""

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rakuten_mm.params import load_params

DEFAULT_METRICS_FILE = "metrics/evaluate/metrics.json"


class GateError(Exception):
    """The gate could not compare (missing file, revision or metric)."""


@dataclass
class GateResult:
    """The outcome of one comparison."""

    metric: str
    baseline: float
    current: float
    tolerance: float

    @property
    def drop(self) -> float:
        """How much the metric fell (negative when it improved)."""
        return self.baseline - self.current

    @property
    def passed(self) -> bool:
        """True when the drop is within the tolerance."""
        # A tiny epsilon so that a drop of exactly `tolerance` passes despite float rounding.
        return self.drop <= self.tolerance + 1e-12

    def message(self, rev: str) -> str:
        """One line saying what was compared and the verdict."""
        verdict = "PASS" if self.passed else "FAIL"
        return (f"gate {verdict}: {self.metric} = {self.current:.4f} vs {self.baseline:.4f} at {rev} "
                f"(change {-self.drop:+.4f}, tolerance {self.tolerance:.4f})")


def metric_value(metrics: dict, dotted_name: str, source: str) -> float:
    """The number at a dotted path (`val.fusion.f1_weighted`) in a metrics dict."""
    value = metrics
    for key in dotted_name.split("."):
        if not isinstance(value, dict) or key not in value:
            raise GateError(f"metric {dotted_name!r} not found in {source}")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GateError(f"metric {dotted_name!r} in {source} is not a number: {value!r}")
    return float(value)


def read_workspace_metrics(repo: Path, metrics_file: str) -> dict:
    """The metrics file as it is in the working tree."""
    path = repo / metrics_file
    if not path.is_file():
        raise GateError(f"{metrics_file} not found in the workspace: run `dvc repro` first")
    return json.loads(path.read_text(encoding="utf-8"))


def read_revision_metrics(repo: Path, metrics_file: str, rev: str) -> dict:
    """The metrics file as committed at a git revision (metrics are git-tracked, cache: false)."""
    result = subprocess.run(["git", "show", f"{rev}:{metrics_file}"], cwd=repo,
                            capture_output=True, text=True)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git show failed"
        raise GateError(f"cannot read {metrics_file} at {rev}: {detail}")
    return json.loads(result.stdout)


def check_gate(repo: Path, rev: str, metric: str, tolerance: float,
               metrics_file: str = DEFAULT_METRICS_FILE) -> GateResult:
    """Compare the workspace's metric with the one at `rev`."""
    current = metric_value(read_workspace_metrics(repo, metrics_file), metric, f"workspace {metrics_file}")
    baseline = metric_value(read_revision_metrics(repo, metrics_file, rev), metric, f"{rev}:{metrics_file}")
    return GateResult(metric=metric, baseline=baseline, current=current, tolerance=tolerance)


def gate_settings(params_path: Path) -> tuple[str, float, str]:
    """(metric, tolerance, metrics file) from the `gate:` section of params.yaml."""
    gate = (load_params(params_path) or {}).get("gate")
    if not gate or "metric" not in gate or "tolerance" not in gate:
        raise GateError(f"{params_path} needs a `gate:` section with `metric` and `tolerance`")
    return str(gate["metric"]), float(gate["tolerance"]), str(gate.get("file", DEFAULT_METRICS_FILE))


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 on pass, 1 on a drop beyond tolerance, 2 when the comparison is impossible."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--params", type=Path, default=None, help="params file (default: REPO/params.yaml)")
    args = parser.parse_args(argv)
    try:
        metric, tolerance, metrics_file = gate_settings(args.params or args.repo / "params.yaml")
        result = check_gate(args.repo, args.rev, metric, tolerance, metrics_file)
    except (GateError, json.JSONDecodeError) as error:
        print(f"gate ERROR: {error}", file=sys.stderr)
        return 2
    print(result.message(args.rev), file=sys.stdout if result.passed else sys.stderr)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
