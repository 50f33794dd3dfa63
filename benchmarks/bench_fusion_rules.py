"""Fusion rules compared on real products: the same members' probabilities, each rule's test weighted F1.

    python benchmarks/bench_fusion_rules.py [DATA_DIR] [--seeds 0 1 2] [--folds 5]
        [--out benchmarks/results/fusion_rules]

For each seed and fold of bench_real_sample.py's cross-validation (same folds, same split), runs
the `tfidf`, `train_text` and `train_baseline` stage commands of dvc.yaml, then fits every rule
on the two members' out-of-fold probabilities of the fold's train + validation rows and scores it
on the fold's test rows. The image model is left out: on the sample it scores below chance and
train_fusion leaves it out too. "auto (served)" is train_fusion's own choice (fit_fusion with
params.yaml's train_fusion); "highest out-of-fold F1" serves the candidate (fitted fusion or
member) with the best out-of-fold F1, a tie going to the member: auto before selection_margin.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import yaml

import bench_real_sample as bench
from pipeline_utils import copy_repository, deep_merge
from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.data.splitting import duplicate_groups, fitting_folds, grouped_folds
from rakuten_mm.evaluation.metrics import weighted_f1
from rakuten_mm.models.fusion import apply_fusion, candidate_methods, fit_fusion, fit_method, out_of_fold_candidates

MEMBERS = ("text", "baseline")
MEMBER_STAGES = ("tfidf", "train_text", "train_baseline")


def fold_probabilities(repo: Path) -> dict:
    """Each member's out-of-fold (train + validation rows) and test probabilities, as the stages wrote them."""
    return {kind: {m: np.load(repo / "data" / "probs" / m / f"{kind}.npy") for m in MEMBERS} for kind in ("oof", "test")}


def highest_out_of_fold_f1(params: dict, oof: dict, labels: np.ndarray, folds: np.ndarray) -> dict:
    """The fitted fusion or member with the best out-of-fold F1 (a tie serves the member)."""
    rows = np.ones(len(labels), dtype=bool)
    fitted = {name: c for name, c in out_of_fold_candidates(params, oof, labels, folds, list(MEMBERS), rows,
                                                            "text").items() if not name.endswith("/equal")}
    best = max(MEMBERS, key=lambda m: weighted_f1(labels, oof[m].argmax(1)))
    chosen = max(fitted, key=lambda name: weighted_f1(labels, fitted[name][3].argmax(1)))
    if weighted_f1(labels, fitted[chosen][3].argmax(1)) <= weighted_f1(labels, oof[best].argmax(1)):
        return {"method": "member", "member": best}
    return fit_method(fitted[chosen][0], oof, labels, best)


def rule_scores(params: dict, probs: dict, labels: np.ndarray, folds: np.ndarray, test_labels: np.ndarray) -> dict:
    """Test weighted F1 of each member and each fusion rule fitted on the out-of-fold rows."""
    oof, test = probs["oof"], probs["test"]
    rules = {"auto (served)": fit_fusion(params, oof, labels, folds)[0],
             "highest out-of-fold F1": highest_out_of_fold_f1(params, oof, labels, folds)}
    for name, settings in candidate_methods({**params, "method": "auto"}).items():
        rules[name] = fit_method(settings, oof, labels, "text")
    scores = {m: weighted_f1(test_labels, test[m].argmax(1)) for m in MEMBERS}
    scores.update({name: weighted_f1(test_labels, apply_fusion(fusion, test).argmax(1)) for name, fusion in rules.items()})
    return scores


def run_seed(repo: Path, params: dict, commands: dict, seed: int, n_folds: int) -> list[dict]:
    """Every fold of one seed: the member stages, then every rule's test score."""
    table = read_split_table(repo / "data" / "interim" / "labelled.csv")
    labels, groups = table["label"].to_numpy(), duplicate_groups(table["title"], table["description"])
    results = []
    for number, test_rows in enumerate(grouped_folds(labels, groups, n_folds, seed), start=1):
        names = bench.fold_split(labels, groups, test_rows, params["split"])
        folds = fitting_folds(labels, groups, names, params["split"]["folds"], params["split"]["seed"])
        bench.write_split(repo, table, names, folds)
        for stage in MEMBER_STAGES:
            bench.run_stage(repo, commands[stage])
        scores = rule_scores(params["train_fusion"], fold_probabilities(repo), labels[folds >= 0],
                             folds[folds >= 0], labels[names == "test"])
        results.append({"seed": seed, "fold": number, "test_f1_weighted": scores})
        print(f"seed {seed} fold {number}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
    return results


def markdown(result: dict) -> str:
    """One row per rule: mean ± std over every fold of every seed, then each seed's mean."""
    folds, seeds = result["per_fold"], result["seeds"]
    lines = [f"Fusion rules on {result['data_name']} ({result['rows']} rows), {result['folds']} folds × seeds "
             f"{', '.join(map(str, seeds))} (bench_real_sample's folds): test weighted F1 of the same members' "
             "probabilities under each rule.", "",
             "| rule | mean ± std over folds | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    for rule in folds[0]["test_f1_weighted"]:
        values = [f["test_f1_weighted"][rule] for f in folds]
        per_seed = [np.mean([f["test_f1_weighted"][rule] for f in folds if f["seed"] == s]) for s in seeds]
        lines.append(f"| {rule} | {np.mean(values):.3f} ± {np.std(values):.3f} | "
                     + " | ".join(f"{v:.3f}" for v in per_seed) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Import the folder once, run every seed's folds, write the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=str(bench.REPO_ROOT.parent / "shared" / "rakuten-real-sample"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--params-file", default=None, help="YAML of params overrides")
    parser.add_argument("--out", default=str(bench.REPO_ROOT / "benchmarks" / "results" / "fusion_rules"))
    args = parser.parse_args()
    data = Path(args.data).resolve()
    overrides = deep_merge(bench.BENCH_OVERRIDES, {"import": {"source": "dir", "dir": {"path": str(data)}}})
    if args.params_file:
        overrides = deep_merge(yaml.safe_load(Path(args.params_file).read_text()), overrides)
    repo = copy_repository(Path(tempfile.mkdtemp(prefix="rakuten-fusion-")), overrides, tiny=False)
    params, commands = yaml.safe_load((repo / "params.yaml").read_text()), bench.stage_commands(repo)
    for name in bench.DATA_STAGES:
        bench.run_stage(repo, commands[name])
    folds = [fold for seed in args.seeds for fold in run_seed(repo, params, commands, seed, args.folds)]
    result = {"data_name": data.name, "rows": len(read_split_table(repo / "data" / "interim" / "labelled.csv")),
              "folds": args.folds, "seeds": args.seeds, "per_fold": folds}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
