"""Benchmark the whole pipeline at several fractions of the real data set's size.

For each scale it copies the repository into a work folder, sets the synthetic generator to
that fraction of the real sizes (84,916 labelled + 13,812 unlabelled products, with images) and
runs every stage with `dvc repro --single-item <stage>` in pipeline order, measuring per stage:
  wall     seconds of the whole `dvc repro` call (DVC's hashing and caching included)
  cpu      user + system seconds of it and all its children (worker processes included)
  rss      peak resident memory of the largest single process, in MB
plus the training throughput each training stage logged (samples/s, median over epochs).

    python benchmarks/bench_pipeline_scale.py [--scales 0.0625,0.25,1] [--set train_image.epochs=2 ...]
        [--workdir /tmp/rakuten-scale] [--out benchmarks/results/pipeline_scale]

--set overrides params for every scale (dotted key=YAML value), e.g. fewer epochs, and is
recorded with the results. Needs disk: about 8 GB per full-size copy (raw zips, arrays, cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from pipeline_utils import copy_repository, deep_merge, dotted_override  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import run_info  # noqa: E402

FULL_SIZE = {"n_labelled": 84916, "n_unlabelled": 13812}
TRAINING_STAGES = ("train_text", "train_image")


def scale_overrides(scale: float, extra: list[str]) -> dict:
    """Params for one scale: generator sizes, then the --set overrides."""
    sizes = {name: max(int(round(count * scale)), 60) for name, count in FULL_SIZE.items()}
    overrides = {"import": {"source": "sample", "sample": sizes}}
    for assignment in extra:
        overrides = deep_merge(overrides, dotted_override(assignment))
    return overrides


def pipeline_stages(repo: Path) -> list[str]:
    """Stage names in dvc.yaml order, which is a topological order of the DAG."""
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def measure_stage(repo: Path, stage: str) -> dict:
    """Run one stage through DVC; wall, CPU (children included) and peak RSS of its process tree."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = (repo / f"bench_{stage}.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=repo, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    # wait4 returns the rusage of the child and every descendant it waited for.
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    log.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stage {stage} failed: see {repo / f'bench_{stage}.log'}")
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def training_throughput(repo: Path, stage: str) -> float | None:
    """The median samples/s a training stage logged, if it did."""
    path = repo / "metrics" / stage / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("throughput", {}).get("train_samples_per_second")


def run_scale(workdir: Path, scale: float, extra: list[str]) -> dict:
    """Copy the repository, set the sizes, run and measure every stage; then free the disk."""
    repo = workdir / f"scale_{scale:g}"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    copy_repository(repo, scale_overrides(scale, extra), tiny=False)
    stages = {}
    for stage in pipeline_stages(repo):
        stages[stage] = measure_stage(repo, stage)
        print(f"scale {scale:g} {stage}: {stages[stage]}", flush=True)
    throughput = {stage: training_throughput(repo, stage) for stage in TRAINING_STAGES}
    metrics = json.loads((repo / "metrics/evaluate/metrics.json").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    shutil.rmtree(repo, ignore_errors=True)
    return {"scale": scale, "sizes": params["import"]["sample"], "stages": stages, "throughput": throughput,
            "test_f1_weighted": {m: metrics["test"][m]["f1_weighted"] for m in ("text", "image", "fusion", "baseline")}}


def markdown_table(results: list[dict]) -> str:
    """One row per stage; wall s / CPU s / peak RSS MB for each scale side by side."""
    scales = [f"{r['scale']:g} ({r['sizes']['n_labelled']:,}+{r['sizes']['n_unlabelled']:,})" for r in results]
    lines = ["| stage | " + " | ".join(f"{s}: wall s / CPU s / RSS MB" for s in scales) + " |",
             "|---|" + "---|" * len(results)]
    for stage in results[0]["stages"]:
        cells = [r["stages"][stage] for r in results]
        lines.append(f"| {stage} | " + " | ".join(
            f"{c['wall_s']:.0f} / {c['cpu_s']:.0f} / {c['peak_rss_mb']:,}" for c in cells) + " |")
    totals = [(sum(c["wall_s"] for c in r["stages"].values()), sum(c["cpu_s"] for c in r["stages"].values()),
               max(c["peak_rss_mb"] for c in r["stages"].values())) for r in results]
    lines.append("| **total** (RSS: max) | " + " | ".join(f"{w:.0f} / {c:.0f} / {m:,}" for w, c, m in totals) + " |")
    for stage in TRAINING_STAGES:
        lines.append(f"| {stage} samples/s | " + " | ".join(
            f"{r['throughput'][stage]:.0f}" if r["throughput"][stage] else "-" for r in results) + " |")
    lines.append("| test weighted F1 (text / image / fusion / baseline) | " + " | ".join(
        " / ".join(f"{v:.3f}" for v in r["test_f1_weighted"].values()) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    """Run every scale, then write the JSON results and the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="0.0625,0.25,1")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rakuten-scale"))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/pipeline_scale")
    args = parser.parse_args()
    # The commit and load are read before the run: the copies it measures are taken from this checkout.
    report = {"commit": run_info.commit(), "machine": run_info.machine(), "overrides": args.overrides}
    report["results"] = [run_scale(args.workdir, float(s), args.overrides) for s in args.scales.split(",")]
    report["load_average_1m_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(report["results"])
    args.out.with_suffix(".md").write_text(
        f"Commit {report['commit']}; machine: {report['machine']}; load average after the run: "
        f"{report['load_average_1m_after']:.2f}\n\nOverrides: {args.overrides or 'none'}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
