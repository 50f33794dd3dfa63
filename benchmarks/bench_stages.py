"""Benchmark every stage of the default pipeline: `dvc repro -s --force <stage>`, one after the other.

Run it in a checkout whose pipeline has run once (`make run`), on an otherwise idle machine. Each
stage runs --repeats times in pipeline order (its inputs are the previous stage's outputs); the
table gives the median wall seconds, the stage's share and the total, with the commit and the
machine, in benchmarks/results/stages.{json,md}. The stages write the same outputs again (the
forced-rerun test checks they are byte-identical), so the workspace is left as it was.

    python benchmarks/bench_stages.py [--repeats 1] [--out benchmarks/results/stages.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_info import commit, machine  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "stages.json"


def pipeline_stages() -> list[str]:
    """The stages of dvc.yaml in the order `dvc repro` runs them."""
    declared = list(yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
    dry = subprocess.run([dvc(), "repro", "--dry", "--force"], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout
    ordered = [line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage '")]
    if set(ordered) != set(declared):
        raise SystemExit(f"`dvc repro --dry --force` lists {ordered}, dvc.yaml declares {declared}")
    return ordered


def dvc() -> str:
    """The dvc executable beside this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def time_stage(stage: str) -> float:
    """Wall seconds of one forced run of a single stage (DVC's own overhead included)."""
    started = time.perf_counter()
    subprocess.run([dvc(), "repro", "-s", "--force", stage], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def write_results(results: dict, out: Path) -> None:
    """The JSON and a Markdown table beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    total = results["total_seconds"]
    lines = [f"# Stage times, `dvc repro -s --force` (commit {results['commit']})", "",
             f"{results['machine']['cpu']}, {results['machine']['cores']} cores; load average before the run "
             f"{results['machine']['load_average_1m']:.2f}; median of {results['repeats']} run(s).", "",
             "| stage | seconds | share |", "|---|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} | {100 * seconds / total:.0f}% |"
              for stage, seconds in results["stages"].items()]
    lines.append(f"| all stages | {total:.1f} | 100% |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Time each stage, in pipeline order, and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    # Read before the runs: they rewrite dvc.lock and metrics/, which would mark the checkout dirty.
    info, measured_commit = machine(), commit()
    stages = pipeline_stages()
    samples = {stage: [] for stage in stages}
    for _ in range(args.repeats):
        for stage in stages:
            samples[stage].append(time_stage(stage))
            print(f"{stage}: {samples[stage][-1]:.1f} s", flush=True)
    medians = {stage: sorted(times)[len(times) // 2] for stage, times in samples.items()}
    results = {"commit": measured_commit, "machine": info, "repeats": args.repeats, "stages": medians,
               "total_seconds": sum(medians.values())}
    write_results(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
