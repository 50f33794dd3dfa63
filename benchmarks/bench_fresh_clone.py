"""Benchmark the README's first command as a newcomer runs it: a fresh clone, then `make run`.

Clones this checkout's HEAD into a temporary folder and times the install `make run` starts with
(the venv and the pinned pipeline requirements, `make .venv/.installed-run`) and then the rest of
`make run` (`dvc repro` on the default params) there, on an otherwise idle
machine. pip's download cache is whatever the machine has (the results say whether it was empty):
with a cold cache the install also waits for the package index. Writes the wall seconds of both
steps, whether the clone's outs then equal its committed dvc.lock, the commit and the machine to
benchmarks/results/fresh_clone.{json,md}.

    python benchmarks/bench_fresh_clone.py [--out benchmarks/results/fresh_clone.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_info import commit, machine  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "fresh_clone.json"
# Outs whose content holds timings (latency, training samples/s): they differ from run to run, the
# others must equal dvc.lock's (tests/test_pipeline.py's forced-rerun test reads the same set).
TIMED_OUTS = frozenset({"metrics/latency.json", "metrics/train_text", "metrics/train_image", "plots/train_text",
                        "plots/train_image"})


def timed(command: list[str], cwd: Path) -> float:
    """Wall seconds of one command, which must succeed."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def pip_cache_empty() -> bool:
    """Whether pip's download cache holds nothing (a cold install)."""
    found = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    folder = Path(found.stdout.strip()) if found.returncode == 0 else None
    return folder is None or not folder.exists() or not any(folder.iterdir())


def out_hashes(lock: str) -> dict[str, str]:
    """Each out path of a dvc.lock text with its md5."""
    stages = yaml.safe_load(lock)["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


def changed_outs(clone: Path) -> list[str]:
    """The outs whose md5 differs from the committed dvc.lock's after the run, timing outs left out."""
    committed = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=clone, capture_output=True, text=True,
                               check=True).stdout
    before, after = out_hashes(committed), out_hashes((clone / "dvc.lock").read_text(encoding="utf-8"))
    return sorted(path for path in before.keys() | after.keys()
                  if before.get(path) != after.get(path) and path not in TIMED_OUTS)


def write_results(results: dict, out: Path) -> None:
    """The JSON and a Markdown table beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    cache = "empty (cold)" if results["pip_cache_empty"] else "warm (packages already downloaded)"
    lines = [f"# A fresh clone, then `make run` (commit {results['commit']})", "",
             f"{results['machine']['cpu']}, {results['machine']['cores']} cores; load average before "
             f"{results['machine']['load_average_1m']:.2f}; pip cache {cache}.", "",
             "| step | seconds |", "|---|---|",
             f"| install (venv + pinned pipeline requirements) | {results['setup_seconds']:.0f} |",
             f"| make run (dvc repro, default params) | {results['run_seconds']:.0f} |",
             f"| both | {results['setup_seconds'] + results['run_seconds']:.0f} |", "",
             f"Outs that differ from the committed dvc.lock (timing outs aside): "
             f"{', '.join(results['changed_outs']) or 'none'}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Clone, time the set-up and the run, and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    info, measured_commit, cold = machine(), commit(), pip_cache_empty()
    with tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
        setup = timed(["make", ".venv/.installed-run"], clone)
        run = timed(["make", "run"], clone)
        results = {"commit": measured_commit, "machine": info, "pip_cache_empty": cold,
                   "setup_seconds": setup, "run_seconds": run, "changed_outs": changed_outs(clone)}
    write_results(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
