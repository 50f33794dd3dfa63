"""A sweep on this machine: queue its parameter sets as DVC experiments, run the queue, report the best.

    python -m rakuten_mm.tracking.sweep_queue text_and_fusion [--jobs 2]    (or scripts/sweep.py)

reads sweeps/text_and_fusion.yaml and queues one `dvc exp run --queue -S key=value ...` per
parameter set, runs them `--jobs` at a time, then writes sweeps/reports/text_and_fusion.md and
prints the best experiment on the validation metric. Across machines: rakuten_mm.tracking.sweep_worker.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

from rakuten_mm.tracking.sweep_report import render_report, score, shown_experiments, split_metric
from rakuten_mm.tracking.sweeps import (DEFAULT_METRIC, SWEEPS_DIR, dvc, git, parameter_sets, report_path,
                                        sweep_name)

QUEUED_NAME = re.compile(r"Queued experiment '([^']+)'")


def queue_experiments(overrides: list[list[str]]) -> list[str]:
    """Queue one experiment per override list; return their names."""
    names = []
    for settings in overrides:
        output = dvc("exp", "run", "--queue", *[arg for setting in settings for arg in ("-S", setting)])
        match = QUEUED_NAME.search(output)
        if not match:
            raise RuntimeError(f"could not read the queued experiment's name from:\n{output}")
        names.append(match.group(1))
        print(f"queued {match.group(1)}: {' '.join(settings)}", flush=True)
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


def local_plan(sweep_file: Path, names: list[str], overrides: list[list[str]]) -> dict:
    """The report's view of a local sweep: its queued experiments on this checkout's HEAD."""
    return {"sweep": sweep_name(sweep_file), "sweep_file": str(sweep_file), "commit": git("rev-parse", "HEAD"),
            "experiments": [{"index": index, "name": name, "params": params}
                            for index, (name, params) in enumerate(zip(names, overrides))]}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="sweep file name in sweeps/, without .yaml")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run in parallel (dvc queue start -j)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"file:key to maximise (default: {DEFAULT_METRIC})")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for the queue")
    parser.add_argument("--sweeps-dir", type=Path, default=SWEEPS_DIR)
    args = parser.parse_args(argv)
    sweep_file = args.sweeps_dir / f"{args.name}.yaml"
    overrides = parameter_sets(sweep_file)
    names = queue_experiments(overrides)
    dvc("queue", "start", "-j", str(args.jobs))
    wait_for_queue(names, args.timeout)
    file, key = split_metric(args.metric)
    show = json.loads(dvc("exp", "show", "--json"))
    text, best = render_report(local_plan(sweep_file, names, overrides), shown_experiments(show, file), args.metric,
                               git_remote=None)
    report = report_path(args.name)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text, encoding="utf-8")
    print(f"best: {best.name} {key}={score(best, key):.4f}  (apply: dvc exp apply {best.name}; report: {report})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
