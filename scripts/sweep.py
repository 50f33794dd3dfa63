"""Queue a parameter sweep as DVC experiments, run the queue, print the best experiment.

    python scripts/sweep.py text_and_fusion [--jobs 2]

reads sweeps/text_and_fusion.yaml ({dotted params key: [values]}) and queues one
`dvc exp run --queue -S key=value ...` per combination.
"""

import argparse
import csv
import io
import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

SWEEPS_DIR = Path(__file__).resolve().parents[1] / "sweeps"
DEFAULT_METRIC = "metrics/evaluate/metrics.json:fusion.f1_weighted"
QUEUED_NAME = re.compile(r"Queued experiment '([^']+)'")


def dvc(*args: str) -> str:
    """Run a dvc command, return its stdout; raise with its output when it fails."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def combinations(grid: dict) -> list[list[str]]:
    """Every `key=value` combination of a {key: [values]} grid (cross product, file order)."""
    keys = list(grid)
    values = [grid[key] if isinstance(grid[key], list) else [grid[key]] for key in keys]
    return [[f"{key}={value}" for key, value in zip(keys, combo)] for combo in itertools.product(*values)]


def queue_experiments(overrides: list[list[str]]) -> list[str]:
    """Queue one experiment per override list; return their names."""
    names = []
    for settings in overrides:
        output = dvc("exp", "run", "--queue", *[arg for setting in settings for arg in ("-S", setting)])
        match = QUEUED_NAME.search(output)
        if not match:
            raise RuntimeError(f"could not read the queued experiment's name from:\n{output}")
        names.append(match.group(1))
        print(f"queued {match.group(1)}: {' '.join(settings)}")
    return names


def wait_for_queue(names: list[str], timeout_s: float, poll_s: float = 5) -> None:
    """Block until none of the named experiments is queued or running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = [line for line in dvc("queue", "status").splitlines()
                   if any(name in line for name in names) and re.search(r"\b(Queued|Running)\b", line)]
        if not pending:
            return
        time.sleep(poll_s)
    raise TimeoutError(f"the sweep did not finish within {timeout_s:.0f} s (see `dvc queue status`)")


def metric_column(headers: list[str], metric: str) -> str:
    """The CSV column of `file:key`: dvc prefixes the file only when the key is ambiguous."""
    for column in (metric, metric.split(":", 1)[-1]):
        if column in headers:
            return column
    raise RuntimeError(f"{metric} is not a column of `dvc exp show --csv`")


def best_experiment(names: list[str], metric: str) -> tuple[dict, str]:
    """(row, metric column) of the named experiment with the highest metric in `dvc exp show --csv`."""
    reader = csv.DictReader(io.StringIO(dvc("exp", "show", "--csv", "--sort-by", metric, "--sort-order", "desc")))
    rows = [row for row in reader if row.get("Experiment") in names]
    column = metric_column(reader.fieldnames or [], metric)
    scored = [row for row in rows if row.get(column) not in (None, "", "-", "!")]
    if not scored:
        raise RuntimeError(f"no finished experiment of this sweep has {metric} (see `dvc queue status`)")
    return max(scored, key=lambda row: float(row[column])), column


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="sweep file name in sweeps/, without .yaml")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run in parallel (dvc queue start -j)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"file:key to maximise (default: {DEFAULT_METRIC})")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for the queue")
    parser.add_argument("--sweeps-dir", type=Path, default=SWEEPS_DIR)
    args = parser.parse_args(argv)
    grid = yaml.safe_load((args.sweeps_dir / f"{args.name}.yaml").read_text(encoding="utf-8"))
    names = queue_experiments(combinations(grid))
    dvc("queue", "start", "-j", str(args.jobs))
    wait_for_queue(names, args.timeout)
    best, column = best_experiment(names, args.metric)
    print(f"best: {best['Experiment']} {column}={float(best[column]):.4f}  (apply: dvc exp apply {best['Experiment']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
