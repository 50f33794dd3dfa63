"""Training throughput of each training stage on this machine's device (CPU or GPU), unchanged on both.

    python benchmarks/bench_training.py [--labelled 12000] [--set train_image.mixed_precision=true ...]
        [--workdir DIR] [--out benchmarks/results/training]

Copies the repository, generates `--labelled` synthetic products, runs the stages up to the
training stages with `dvc repro`, then reads what each training stage logged: the device it ran
on, its precision policy and its median samples/s over epochs (the whole epoch, validation pass
included). Needs only `pip install -r requirements.txt`; on a GPU machine TensorFlow uses the GPU
by itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_pipeline_scale import machine, measure_stage, pipeline_stages  # noqa: E402
from pipeline_utils import copy_repository, deep_merge, dotted_override  # noqa: E402

TRAINING_STAGES = ("train_text", "train_image")


def stage_report(repo: Path, stage: str, timing: dict) -> dict:
    """Device, precision, effective batch size and samples/s that a training stage logged."""
    metrics = json.loads((repo / "metrics" / stage / "metrics.json").read_text())
    logged = yaml.safe_load((repo / "metrics" / stage / "params.yaml").read_text())
    return {"device": logged.get("device"), "precision": logged.get("precision"),
            "batch_size": logged.get("effective_batch_size"), "epochs_run": metrics.get("step", 0) + 1,
            "samples_per_second": metrics["throughput"]["train_samples_per_second"], **timing}


def markdown_table(result: dict) -> str:
    """One row per training stage."""
    lines = [f"{result['labelled']:,} synthetic products; {result['machine']['cpu']}, "
             f"{result['machine']['cores']} cores.", "",
             "| stage | device | precision | batch | samples/s (median epoch) | epochs | stage wall s |",
             "|---|---|---|---|---|---|---|"]
    for stage, r in result["stages"].items():
        lines.append(f"| {stage} | {r['device']} | {r['precision']} | {r['batch_size']} | "
                     f"{r['samples_per_second']:,.0f} | {r['epochs_run']} | {r['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the stages up to training in a copy and report the training stages."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelled", type=int, default=12000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "training"))
    args = parser.parse_args()
    overrides = {"import": {"source": "sample", "sample": {"n_labelled": args.labelled, "n_unlabelled": 60}}}
    for assignment in args.set:
        overrides = deep_merge(overrides, dotted_override(assignment))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rakuten-training-"))
    repo = copy_repository(workdir, overrides, tiny=False)
    stages = {}
    for stage in pipeline_stages(repo):
        timing = measure_stage(repo, stage)
        if stage in TRAINING_STAGES:
            stages[stage] = stage_report(repo, stage, timing)
            print(stage, stages[stage], flush=True)
        if all(name in stages for name in TRAINING_STAGES):
            break
    result = {"labelled": args.labelled, "overrides": args.set, "machine": machine(), "stages": stages}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown_table(result))
    print(markdown_table(result))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
