"""The review loop on the real tiny pipeline: the threshold saved with the model, and corrections as training data."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline_utils import copy_checkout, run
from rakuten_mm.categories import CODES
from rakuten_mm.data.raw_layout import image_filename, write_labelled_folder
from rakuten_mm.models.fusion import members_used

pytestmark = pytest.mark.slow
N_RELABELLED, N_ADDED = 30, 6


def test_fusion_json_holds_the_review_rule_chosen_on_out_of_fold_rows(tiny_pipeline):
    repo, _ = tiny_pipeline
    review = json.loads((repo / "models/fusion/fusion.json").read_text())["review"]
    params = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]
    assert (review["chosen_by"], review["target_precision"], review["target_coverage"]) == \
        ("target_precision", params["target_precision"], params["target_coverage"])
    oof = np.load(repo / "data/probs/fusion/oof.npz")
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    labels = pd.read_csv(repo / "data/interim/labelled.csv", index_col="index")["label"].to_numpy()
    # The rows it was chosen on are the train + validation rows on which every served member is out
    # of fold (all of them when the served members are cross-fitted, the validation rows otherwise).
    fusion = json.loads((repo / "models/fusion/fusion.json").read_text())
    served = members_used(fusion)
    fitting = split.index[split["split"] != "test"].to_numpy()
    out_of_fold = np.ones(len(fitting), dtype=bool)
    for member in served:
        out_of_fold &= ~np.isnan(np.load(repo / f"data/probs/{member}/oof.npy")).any(axis=1)
    assert sorted(oof["rows"]) == sorted(fitting[out_of_fold])
    assert set(split.index[split["split"] == "val"]) <= set(oof["rows"])
    assert (oof["labels"] == labels[oof["rows"]]).all()
    assert oof["probabilities"].shape == (len(oof["rows"]), len(CODES))
    # Recomputed here from the saved probabilities: what the rule files and how often it is right.
    confidence, right = oof["probabilities"].max(1), oof["probabilities"].argmax(1) == oof["labels"]
    filed = confidence >= review["threshold"]
    assert review["oof"] == {"rows": len(right), "coverage": pytest.approx(filed.mean()),
                             "precision": pytest.approx(right[filed].mean())}
    if review["reached"]:
        assert right[filed].mean() >= review["target_precision"]
        # Lowest such threshold: filing the next less confident product too would fall below the target.
        lower = confidence[confidence < review["threshold"]]
        if len(lower):
            wider = confidence >= lower.max()
            assert right[wider].mean() < review["target_precision"]


def test_evaluate_reports_coverage_and_precision_at_the_threshold(tiny_pipeline):
    repo, _ = tiny_pipeline
    threshold = json.loads((repo / "models/fusion/fusion.json").read_text())["review"]["threshold"]
    metrics = json.loads((repo / "metrics/evaluate/metrics.json").read_text())
    fused = np.load(repo / "data/predictions/test_fused_probabilities.npy")
    truth = pd.read_csv(repo / "data/predictions/test_predictions.csv", index_col=0)["prdtypecode"].to_numpy()
    filed = fused.max(1) >= threshold
    assert metrics["review"]["threshold"] == pytest.approx(threshold)
    assert metrics["test"]["review"]["coverage"] == pytest.approx(filed.mean())
    right = np.asarray(CODES)[fused.argmax(1)] == truth
    if filed.any():
        assert metrics["test"]["review"]["precision"] == pytest.approx(right[filed].mean())
    curve = pd.read_csv(repo / "plots/evaluate/review/curve.csv")
    assert list(curve.columns) == ["threshold", "val_coverage", "val_precision", "test_coverage", "test_precision"]
    assert curve["test_coverage"].iloc[0] == 1.0 and curve["test_coverage"].is_monotonic_decreasing
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert "coverage" in next(iter(shown.values()))["data"]["metrics/evaluate/metrics.json"]["data"]["test"]["review"]


@pytest.fixture(scope="module")
def corrected_pipeline(tiny_pipeline, tmp_path_factory):
    """A copy of the tiny pipeline rerun with one corrections folder: relabelled products and new ones."""
    repo = copy_checkout(tiny_pipeline[0], tmp_path_factory.mktemp("corrected") / "repo")
    # Committed as it is, so that `dvc metrics diff` compares the corrected run with this one.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "before the corrections"], repo)
    files = yaml.safe_load((repo / "params.yaml").read_text())["import"]["files"]
    x = pd.read_csv(repo / "data/raw" / files["x_train"], index_col=0)
    y = pd.read_csv(repo / "data/raw" / files["y_train"], index_col=0)
    # Reviewers move some products to the code after theirs: every one of them changes label.
    relabelled = x.iloc[:N_RELABELLED].join(y)
    relabelled["prdtypecode"] = [CODES[(CODES.index(c) + 1) % len(CODES)] for c in relabelled["prdtypecode"]]
    # New products: unlabelled ones (with their photos) that a reviewer filed.
    unlabelled = pd.read_csv(repo / "data/raw" / files["x_test"], index_col=0).iloc[:N_ADDED]
    added = unlabelled.assign(prdtypecode=CODES[3])
    added.index = range(10_000_000, 10_000_000 + N_ADDED)
    with zipfile.ZipFile(repo / "data/raw" / files["images_test"]) as archive:
        members = {name.rsplit("/", 1)[-1]: name for name in archive.namelist()}
        photos = [(i, p, archive.read(members[image_filename(i, p)]))
                  for i, p in zip(added["imageid"], added["productid"]) if image_filename(i, p) in members]
    folder = repo / "corrections" / "batch-1"
    write_labelled_folder(pd.concat([relabelled, added]), photos, folder, files)
    run(["dvc", "add", "corrections/batch-1"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["import"]["corrections"] = ["corrections/batch-1"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = {name: json.loads((repo / "metrics" / name).read_text())
              for name in ("data_report.json", "evaluate/metrics.json")}
    result = run(["dvc", "repro"], repo, timeout=900)
    return repo, relabelled, added, len(photos), before, result.stdout


def test_corrections_change_the_labels_the_data_report_and_the_metrics(corrected_pipeline):
    repo, relabelled, added, n_photos, before, output = corrected_pipeline
    assert "Running stage 'import'" in output and "Running stage 'evaluate'" in output
    report = json.loads((repo / "metrics/data_report.json").read_text())
    assert report["corrections"] == {"rows": N_RELABELLED + N_ADDED, "products": N_RELABELLED + N_ADDED,
                                     "relabelled": N_RELABELLED, "confirmed": 0, "added": N_ADDED}
    assert report["labelled"]["rows"] == before["data_report.json"]["labelled"]["rows"] + N_ADDED
    table = pd.read_csv(repo / "data/interim/labelled.csv", index_col="index")
    by_product = table.set_index("productid")["prdtypecode"]
    assert (by_product[relabelled["productid"]].to_numpy() == relabelled["prdtypecode"].to_numpy()).all()
    assert (by_product[added["productid"]] == CODES[3]).all()
    # The added products' photos were found in the corrections archive.
    assert table.set_index("productid")["has_image"][added["productid"]].sum() == n_photos > 0
    # One row per corrected product, hence each in one split.
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    corrected = table["productid"].isin([*relabelled["productid"], *added["productid"]]).to_numpy()
    assert corrected.sum() == N_RELABELLED + N_ADDED == len(split[corrected])
    # The next run's metrics are computed on the corrected labels: the test predictions' truth is the reviewers'.
    predictions = pd.read_csv(repo / "data/predictions/test_predictions.csv", index_col=0)
    tested = predictions.join(table[["productid"]])
    corrected_tested = tested[tested["productid"].isin(relabelled["productid"])]
    assert len(corrected_tested) > 0
    assert (corrected_tested["prdtypecode"].to_numpy() ==
            by_product[corrected_tested["productid"]].to_numpy()).all()
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "--all"], repo).stdout)
    assert "corrections.relabelled" in diff["metrics/data_report.json"]
    assert diff["metrics/evaluate/metrics.json"]["test.fusion.f1_weighted"]["new"] != \
        before["evaluate/metrics.json"]["test"]["fusion"]["f1_weighted"]


def test_a_changed_corrections_folder_reruns_import(corrected_pipeline):
    repo, relabelled, *_ = corrected_pipeline
    files = yaml.safe_load((repo / "params.yaml").read_text())["import"]["files"]
    assert "up to date" in run(["dvc", "status"], repo).stdout
    # A new export into the same folder, tracked again: params unchanged, the folder's content changed.
    write_labelled_folder(relabelled.iloc[:5], [], repo / "corrections" / "batch-1", files)
    run(["dvc", "add", "corrections/batch-1"], repo)
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
    assert {"changed deps": {"corrections": "modified"}} in status["import"]
