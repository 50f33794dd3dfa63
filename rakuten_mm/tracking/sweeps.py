"""Sweep files (sweeps/*.yaml): the parameter sets they expand into and their experiments' names.

A sweep file maps dotted params.yaml keys to lists of values; it expands into the cross product,
in file order (the first key varies slowest). Parameter set i runs as the DVC experiment
`<sweep>-<i>`, whoever runs it: the local queue (scripts/sweep.py), a Kubernetes Indexed Job or an
Airflow mapped task (rakuten_mm.tracking.sweep_worker).

    python -m rakuten_mm.tracking.sweeps plan --sweep sweeps/text_and_fusion.yaml [--rev main]

prints the commit the sweep will run on and its experiments, as JSON.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

SWEEPS_DIR = Path("sweeps")
REPORTS_DIR = SWEEPS_DIR / "reports"
METRICS_FILE = "metrics/evaluate/metrics.json"
# The best experiment is the one with the best score on the validation split: the test split
# stays untouched by the choice (its score is reported beside it).
DEFAULT_METRIC = f"{METRICS_FILE}:val.fusion.f1_weighted"
DEFAULT_GIT_REMOTE = "origin"
# DVC asks nothing of the network but the remotes it is told to use.
DVC_ENVIRONMENT = {"DVC_NO_ANALYTICS": "1"}


class CommandError(RuntimeError):
    """A git or dvc command exited with an error."""


def run_command(args: list[str], cwd: Path | str | None = None, stream: bool = False) -> str:
    """Run a command; return its output, or print it as it comes (stream); raise CommandError on failure."""
    env = {**os.environ, **DVC_ENVIRONMENT}
    if stream:
        sys.stdout.flush()
        result = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
        output = ""
    else:
        # Files, not pipes: `dvc queue start` forks worker daemons that inherit its stdout and
        # stderr, and reading pipes waits for their last holder to exit (a worker that hung once
        # the queue emptied held a sweep for minutes after its experiments had finished).
        with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
            result = subprocess.run(args, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True,
                                    stdin=subprocess.DEVNULL)
            stdout.seek(0)
            stderr.seek(0)
            output = stdout.read() + stderr.read()
    if result.returncode != 0:
        # The head of the command only: a clone's URL may carry a token (the worker redacts it too).
        raise CommandError(f"{' '.join(args[:5])} ... failed ({result.returncode}):\n{output[-4000:]}")
    return output


def dvc(*args: str, cwd: Path | str | None = None, stream: bool = False) -> str:
    """A dvc command of this interpreter's DVC (python -m dvc)."""
    return run_command([sys.executable, "-m", "dvc", *args], cwd=cwd, stream=stream)


def git(*args: str, cwd: Path | str | None = None) -> str:
    """A git command; its output, stripped."""
    return run_command(["git", *args], cwd=cwd).strip()


def combinations(grid: dict) -> list[list[str]]:
    """Every `key=value` combination of a {key: [values]} grid (cross product, file order)."""
    keys = list(grid)
    values = [grid[key] if isinstance(grid[key], list) else [grid[key]] for key in keys]
    return [[f"{key}={value}" for key, value in zip(keys, combo)] for combo in itertools.product(*values)]


def parse_grid(text: str, source: str) -> dict:
    """The {dotted key: values} grid of a sweep file's text; ValueError when it is not one."""
    grid = yaml.safe_load(text)
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{source}: a sweep file maps params.yaml keys to lists of values")
    return grid


def parameter_sets(sweep_file: Path) -> list[list[str]]:
    """The `-S key=value` lists a sweep file expands into, in their fixed order."""
    return combinations(parse_grid(Path(sweep_file).read_text(encoding="utf-8"), str(sweep_file)))


def sweep_name(sweep_file: Path | str) -> str:
    """A sweep's name: its file name without .yaml."""
    return Path(sweep_file).stem


def experiment_name(sweep: str, index: int) -> str:
    """The DVC experiment name of parameter set `index` of a sweep."""
    return f"{sweep}-{index}"


def report_path(sweep: str) -> Path:
    """Where a sweep's report goes, relative to the repository."""
    return REPORTS_DIR / f"{sweep}.md"


def plan(repo: Path, sweep_file: str, rev: str, fetch_from: str | None = None) -> dict:
    """The commit `rev` names in repo, and the experiments the sweep file at that commit expands into.

    With fetch_from, the git remote of that name is fetched first (rev may then be `origin/main`).
    """
    if fetch_from:
        git("fetch", "--quiet", fetch_from, cwd=repo)
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=repo)
    sets = combinations(parse_grid(git("show", f"{commit}:{sweep_file}", cwd=repo), f"{sweep_file} at {rev}"))
    sweep = sweep_name(sweep_file)
    return {"sweep": sweep, "sweep_file": sweep_file, "commit": commit,
            "experiments": [{"index": index, "name": experiment_name(sweep, index), "params": params}
                            for index, params in enumerate(sets)]}


def main(argv: list[str] | None = None) -> int:
    """CLI: `plan` prints the commit and the experiments of a sweep as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("plan",))
    parser.add_argument("--sweep", required=True, help="sweep file, relative to the repository (sweeps/x.yaml)")
    parser.add_argument("--rev", default="HEAD", help="git revision the sweep runs on (default: HEAD)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository checkout (default: .)")
    parser.add_argument("--fetch", metavar="GIT_REMOTE", help="fetch this git remote first")
    parser.add_argument("--output", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    text = json.dumps(plan(args.repo, args.sweep, args.rev, args.fetch), indent=2)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
