"""k-fold cross-validation of the whole pipeline on real products, with the pipeline's own stages.

    python benchmarks/bench_real_sample.py [DATA_DIR] [--folds 5] [--seed 0] [--set key=value ...]
        [--params-file overrides.yaml] [--workdir DIR] [--out benchmarks/results/real_sample]

DATA_DIR (default ../shared/rakuten-real-sample) is a folder in the challenge layout
(X_train_update.csv, Y_train_CVw08PX.csv, image_train/). The repository is copied into a work
folder with `import.source: dir` on DATA_DIR; `import` and `make_dataset` run once, then for each
fold of a stratified k-fold that keeps duplicate texts together (rakuten_mm.data.splitting) the
fold is the test split, the validation split is drawn from the other rows as the `split` stage
would, and the training stages, `train_fusion` and `evaluate` run with the commands of dvc.yaml.
Prints and writes, per model, the mean ± std of the test weighted F1 over folds and the time per fold;
per fold, the review rule: the coverage at 95% precision (threshold chosen by train_fusion on the
fold's validation rows, out of fold) and the precision it actually reaches on the fold's test rows,
with a figure of precision and coverage against the threshold (--figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT))

from pipeline_utils import copy_repository, deep_merge, dotted_override  # noqa: E402
from rakuten_mm.data.dataset import read_split_table  # noqa: E402
from rakuten_mm.data.splitting import duplicate_groups, fitting_folds, grouped_folds, grouped_holdout  # noqa: E402

MODELS = ("text", "image", "baseline", "fusion")
DATA_STAGES = ("import", "make_dataset")
# Latency repeats only slow the folds down; they say nothing of quality. The review rule: 95% precision.
BENCH_OVERRIDES = {"evaluate": {"latency": {"repeats": 1}, "target_precision": 0.95, "target_coverage": None}}
REVIEW_CURVE = Path("plots") / "evaluate" / "review" / "curve.csv"


def stage_commands(repo: Path) -> dict[str, str]:
    """Each stage's command line, from the copy's dvc.yaml."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return {name: " ".join(stage["cmd"].split()) for name, stage in stages.items()}


def run_stage(repo: Path, command: str) -> float:
    """Run one stage command in the copy; return its wall time; fail with its log's tail."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    result = subprocess.run(command.split(), cwd=repo, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{command} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def fold_split(labels: np.ndarray, groups: np.ndarray, test_rows: np.ndarray, split: dict) -> np.ndarray:
    """'test' for the fold's rows, then 'val' and 'train' drawn from the others as the split stage does."""
    names = np.full(len(labels), "train", dtype=object)
    names[test_rows] = "test"
    rest = np.setdiff1d(np.arange(len(labels)), test_rows)
    val_share = split["val_size"] / (1.0 - split["test_size"])
    names[rest[grouped_holdout(labels[rest], groups[rest], val_share, split["seed"])]] = "val"
    return names


def write_split(repo: Path, table: pd.DataFrame, names: np.ndarray, folds: np.ndarray) -> None:
    """data/processed/split.csv in the split stage's format (with the cross-fitting folds)."""
    frame = pd.DataFrame({"index": table.index.to_numpy(), "split": names, "fold": folds})
    frame.index.name = "row"
    (repo / "data" / "processed").mkdir(parents=True, exist_ok=True)
    frame.to_csv(repo / "data" / "processed" / "split.csv")


def fold_stages(commands: dict[str, str]) -> list[str]:
    """The stages after split, in dvc.yaml order (image_features decides by itself whether to compute)."""
    skip = {*DATA_STAGES, "split"}
    return [name for name in commands if name not in skip]


def run_fold(repo: Path, commands: dict[str, str], stages: list[str]) -> dict:
    """Run the fold's stages; return every model's test and validation scores and the timings."""
    seconds = {name: run_stage(repo, commands[name]) for name in stages}
    metrics = json.loads((repo / "metrics" / "evaluate" / "metrics.json").read_text())
    fusion = json.loads((repo / "models" / "fusion" / "fusion.json").read_text())
    return {"test": {m: metrics["test"][m]["f1_weighted"] for m in MODELS},
            "val": {m: metrics["val"][m]["f1_weighted"] for m in MODELS},
            "served": served_method(fusion), "weights": fusion.get("weights"),
            "review": fold_review(fusion["review"], metrics["test"]["review"]),
            "curve": read_curve(repo / REVIEW_CURVE),
            "seconds": seconds, "fold_seconds": sum(seconds.values())}


def served_method(fusion: dict) -> str:
    """What the fold served: a member's name, or the fusion method (stacking, weighted)."""
    return fusion["member"] if fusion["method"] == "member" else fusion["method"]


def targets(summary: dict) -> dict:
    """Issue 19's checks: served ≥ best single member − 0.005 and ≥ baseline + 0.02 (means over folds)."""
    best = max(("text", "image", "baseline"), key=lambda m: summary[m]["mean"])
    served = summary["fusion"]["mean"]
    return {"best_member": best, "served_minus_best_member": served - summary[best]["mean"],
            "served_minus_baseline": served - summary["baseline"]["mean"],
            "met": bool(served >= summary[best]["mean"] - 0.005 and served >= summary["baseline"]["mean"] + 0.02)}


def read_curve(path: Path) -> dict[str, list]:
    """evaluate's review curve by column; null where nothing is filed (no precision)."""
    frame = pd.read_csv(path)
    return {column: [None if np.isnan(value) else float(value) for value in frame[column]] for column in frame}


def fold_review(rule: dict, test: dict) -> dict:
    """The fold's threshold, its coverage and precision out of fold (train_fusion's rows), and on the test rows."""
    return {"threshold": rule["threshold"], "reached": rule["reached"], "val_coverage": rule["oof"]["coverage"],
            "val_precision": rule["oof"]["precision"], "test_coverage": test["coverage"],
            "test_precision": test.get("precision")}


def summarise(folds: list[dict]) -> dict:
    """Mean and standard deviation over folds of each model's test weighted F1, and of the fold time."""
    summary = {m: {"mean": float(np.mean([f["test"][m] for f in folds])),
                   "std": float(np.std([f["test"][m] for f in folds]))} for m in MODELS}
    for name in ("test_coverage", "test_precision"):
        values = [f["review"][name] for f in folds if f["review"][name] is not None]
        summary[f"review_{name}"] = {"mean": float(np.mean(values)) if values else None,
                                     "std": float(np.std(values)) if values else None}
    times = [f["fold_seconds"] for f in folds]
    summary["fold_seconds"] = {"mean": float(np.mean(times)), "std": float(np.std(times))}
    summary["targets"] = targets(summary)
    return summary


def markdown_table(result: dict) -> str:
    """The README table: one row per model."""
    s = result["summary"]
    lines = [f"Real products: {result['rows']} labelled rows of `{result['data_name']}`, {result['folds']}-fold "
             f"cross-validation (stratified, duplicates grouped, seed {result['seed']}); {result['machine']}.", "",
             "| model | test weighted F1 (mean ± std over folds) |", "|---|---|"]
    lines += [f"| {m} | {s[m]['mean']:.3f} ± {s[m]['std']:.3f} |" for m in MODELS]
    lines += ["", f"Time per fold: {s['fold_seconds']['mean']:.0f} ± {s['fold_seconds']['std']:.0f} s "
              f"(training stages, fusion and evaluate). Served per fold: "
              + ", ".join(f"fold {i + 1}: {f['served']}" for i, f in enumerate(result["per_fold"])) + "."]
    t = s["targets"]
    lines += ["", f"Served model minus the best single member ({t['best_member']}): "
              f"{t['served_minus_best_member']:+.3f} (target ≥ -0.005); minus baseline: "
              f"{t['served_minus_baseline']:+.3f} (target ≥ +0.02): {'met' if t['met'] else 'not met'}."]
    return "\n".join(lines + ["", review_table(result)]) + "\n"


def share(value: float | None) -> str:
    """A share as a percentage; a dash when there is none (nothing filed automatically)."""
    return "–" if value is None else f"{100 * value:.1f}%"


def review_table(result: dict) -> str:
    """The review rule per fold: threshold chosen out of fold for 95% precision, coverage and precision."""
    lines = ["Review rule at 95% target precision (threshold chosen out of fold, on the rows the fold's fusion was "
             "chosen on):", "",
             "| fold | threshold | out-of-fold coverage | out-of-fold precision | test coverage | test precision |",
             "|---|---|---|---|---|---|"]
    for number, fold in enumerate(result["per_fold"], start=1):
        r = fold["review"]
        lines.append(f"| {number} | {r['threshold']:.3f}{'' if r['reached'] else ' (target not reached)'} | "
                     f"{share(r['val_coverage'])} | {share(r['val_precision'])} | {share(r['test_coverage'])} | "
                     f"{share(r['test_precision'])} |")
    s = result["summary"]
    lines.append(f"| mean ± std | | | | {share(s['review_test_coverage']['mean'])} ± "
                 f"{share(s['review_test_coverage']['std'])} | {share(s['review_test_precision']['mean'])} ± "
                 f"{share(s['review_test_precision']['std'])} |")
    return "\n".join(lines)


def review_figure(folds: list[dict], path: Path) -> None:
    """Test precision and coverage against the threshold, one thin line per fold and their mean."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=110)
    axes = figure.subplots()
    for name, color in (("precision", "tab:blue"), ("coverage", "tab:orange")):
        curves = np.array([fold["curve"][f"test_{name}"] for fold in folds], dtype=float)
        thresholds = folds[0]["curve"]["threshold"]
        for curve in curves:
            axes.plot(thresholds, curve, color=color, alpha=0.25, linewidth=0.8)
        axes.plot(thresholds, np.nanmean(curves, axis=0), color=color, linewidth=2, label=f"test {name} (mean)")
    for fold in folds:
        axes.axvline(fold["review"]["threshold"], color="grey", linestyle=":", linewidth=0.8)
    axes.axhline(0.95, color="tab:red", linestyle="--", linewidth=0.8, label="95% precision")
    axes.set(xlabel="threshold on the top-1 fused probability", ylabel="share", ylim=(0, 1.02),
             title=f"Real sample, {len(folds)} folds: auto-filed products (dotted: chosen thresholds)")
    axes.legend(loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=str(REPO_ROOT.parent / "shared" / "rakuten-real-sample"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    parser.add_argument("--params-file", default=None, help="YAML of params overrides, applied before --set")
    parser.add_argument("--workdir", default=None, help="where the repository copy goes (default: a temp dir)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "real_sample"))
    parser.add_argument("--figure", default=str(REPO_ROOT / "docs" / "figures" / "review_curve_real_sample.png"),
                        help="PNG of test precision and coverage against the review threshold")
    return parser.parse_args()


def main() -> None:
    """Import the folder once, run every fold, print and write the summary."""
    args = parse_args()
    data = Path(args.data).resolve()
    if not (data / "X_train_update.csv").is_file():
        raise SystemExit(f"{data}: no X_train_update.csv (a folder in the challenge layout is expected)")
    overrides = deep_merge(BENCH_OVERRIDES, {"import": {"source": "dir", "dir": {"path": str(data)}}})
    if args.params_file:
        overrides = deep_merge(yaml.safe_load(Path(args.params_file).read_text()), overrides)
    for assignment in args.set:
        overrides = deep_merge(overrides, dotted_override(assignment))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rakuten-real-"))
    workdir.mkdir(parents=True, exist_ok=True)
    repo = copy_repository(workdir, overrides, tiny=False)
    params, commands = yaml.safe_load((repo / "params.yaml").read_text()), stage_commands(repo)
    for name in DATA_STAGES:
        run_stage(repo, commands[name])
    table = read_split_table(repo / "data" / "interim" / "labelled.csv")
    labels, groups = table["label"].to_numpy(), duplicate_groups(table["title"], table["description"])
    folds = []
    for number, test_rows in enumerate(grouped_folds(labels, groups, args.folds, args.seed), start=1):
        names = fold_split(labels, groups, test_rows, params["split"])
        split_params = params["split"]
        folds_of_rows = fitting_folds(labels, groups, names, split_params["folds"], split_params["seed"])
        write_split(repo, table, names, folds_of_rows)
        folds.append(run_fold(repo, commands, fold_stages(commands)))
        print(f"fold {number}/{args.folds}: " + ", ".join(f"{m} {folds[-1]['test'][m]:.3f}" for m in MODELS)
              + f" (served: {folds[-1]['served']}, {folds[-1]['fold_seconds']:.0f} s; review: "
              + f"{share(folds[-1]['review']['test_coverage'])} filed at "
              + f"{share(folds[-1]['review']['test_precision'])} precision)", flush=True)
    result = {"data_name": data.name, "rows": len(table), "folds": args.folds, "seed": args.seed,
              "overrides": args.set, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "summary": summarise(folds), "per_fold": folds}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown_table(result))
    review_figure(folds, Path(args.figure))
    print(markdown_table(result))


if __name__ == "__main__":
    main()
