"""The real `dvc repro` on a tiny parameter set, in a temporary copy of the repository."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score

from benchmarks.bench_fresh_clone import TIMED_OUTS, out_hashes
from pipeline_utils import copy_checkout, run
from rakuten_mm.categories import CODES
from rakuten_mm.models.fusion import apply_fusion
from rakuten_mm.models.predictor import ProductClassifier

pytestmark = pytest.mark.slow
STAGES = ["import", "make_dataset", "split", "tfidf", "text_features", "train_text", "image_features", "train_image",
          "train_baseline", "train_fusion", "evaluate"]
MODELS = ["text", "image", "fusion", "baseline"]


def ran_stages(output: str) -> list[str]:
    """Stage names that `dvc repro` actually ran (not restored or skipped)."""
    return re.findall(r"Running stage '([^']+)'", output)


def test_every_stage_runs_and_writes_its_outs(tiny_pipeline):
    repo, output = tiny_pipeline
    assert ran_stages(output) == STAGES
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in STAGES:
        for out in lock["stages"][stage]["outs"]:
            assert (repo / out["path"]).exists(), out["path"]
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_metrics_cover_every_model(tiny_pipeline):
    repo, _ = tiny_pipeline
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    metrics = next(iter(shown.values()))["data"]["metrics/evaluate/metrics.json"]["data"]
    test_scores = metrics.get("test", metrics)  # {"test": {model: ...}} once validation scores sit beside
    for model in MODELS:
        assert {"accuracy", "f1_weighted", "f1_macro"} <= set(test_scores[model]), model
    assert len(metrics["per_class_f1"]) == 27
    # Recomputed here from the saved test outputs: the text probabilities and the fusion's predictions.
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    labels = pd.read_csv(repo / "data/interim/labelled.csv", index_col="index")["label"].to_numpy()
    test_labels = labels[split.index[split["split"] == "test"]]
    text_predicted = np.load(repo / "data/probs/text/test.npy").argmax(axis=1)
    recomputed = f1_score(test_labels, text_predicted, average="weighted")
    assert test_scores["text"]["f1_weighted"] == pytest.approx(recomputed)
    fused = pd.read_csv(repo / "data/predictions/test_predictions.csv", index_col=0)
    assert len(fused) == len(test_labels)
    assert test_scores["fusion"]["accuracy"] == pytest.approx((fused["prdtypecode"] == fused["predicted"]).mean())
    assert test_scores["fusion"]["f1_macro"] == pytest.approx(
        f1_score(fused["prdtypecode"], fused["predicted"], average="macro"))
    # Even on 700 rows the text model must be far above chance (1/27).
    assert test_scores["text"]["f1_weighted"] > 0.3
    latency = json.loads((repo / "metrics/latency.json").read_text())
    assert latency["batch_1"]["per_item_ms_p50"] > 0 and latency["batch_64"]["batch_size"] > 1


def test_submission_has_one_prediction_per_unlabelled_row(tiny_pipeline):
    repo, _ = tiny_pipeline
    submission = pd.read_csv(repo / "data/predictions/submission.csv", index_col=0)
    unlabelled = pd.read_csv(repo / "data/raw/X_test_update.csv", index_col=0)
    assert list(submission.columns) == ["prdtypecode"]
    assert list(submission.index) == list(unlabelled.index)
    assert submission["prdtypecode"].isin(CODES).all()


def test_image_probabilities_are_blank_only_without_image(tiny_pipeline):
    repo, _ = tiny_pipeline
    table = pd.read_csv(repo / "data/interim/labelled.csv", index_col="index")
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    has_image = table["has_image"].to_numpy()[split.index[split["split"] == "test"]]
    image = np.load(repo / "data/probs/image/test.npy")
    assert np.isnan(image[~has_image]).all() and np.isfinite(image[has_image]).all()
    reports = json.loads((repo / "metrics/data_report.json").read_text())
    # The generator decided which photos to leave out or corrupt; make_dataset had to find each of them.
    generated = json.loads((repo / "data/raw/import_report.json").read_text())
    assert generated["missing_images_train"] > 0 and generated["corrupt_images_train"] > 0
    assert reports["labelled"]["images_missing"] == generated["missing_images_train"]
    assert reports["labelled"]["images_unreadable"] == generated["corrupt_images_train"]
    assert int((~table["has_image"]).sum()) == generated["missing_images_train"] + generated["corrupt_images_train"]
    assert reports["import"] == generated


def set_params(repo, **sections) -> None:
    """Change some params of the copy: set_params(repo, train_fusion={"method": "stacking"})."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def lock_hashes(repo) -> dict[str, str]:
    """md5 of every out of every stage in the checkout's dvc.lock."""
    return out_hashes((repo / "dvc.lock").read_text())


@pytest.fixture(scope="module")
def own_pipeline(tiny_pipeline, tmp_path_factory):
    """A copy of the tiny pipeline for the tests that rerun it: the shared one is read by other workers."""
    return copy_checkout(tiny_pipeline[0], tmp_path_factory.mktemp("rerun") / "repo")


# In file order (xdist gives a whole file to one worker): the forced rerun, then two params changes.
def test_a_forced_rerun_rewrites_every_out_byte_identically(own_pipeline):
    repo = own_pipeline
    before = lock_hashes(repo)
    result = run(["dvc", "repro", "--force"], repo, timeout=900)
    assert ran_stages(result.stdout) == STAGES
    after = lock_hashes(repo)
    assert set(before) == set(after) and TIMED_OUTS <= set(before)
    changed = sorted(path for path in before if before[path] != after[path] and path not in TIMED_OUTS)
    assert not changed, f"not reproducible: {changed}"


def test_changing_fusion_method_reruns_only_fusion_and_evaluate(own_pipeline):
    repo = own_pipeline
    set_params(repo, train_fusion={"method": "stacking"})
    result = run(["dvc", "repro"], repo)
    assert ran_stages(result.stdout) == ["train_fusion", "evaluate"]
    fusion = json.loads((repo / "models/fusion/fusion.json").read_text())
    assert fusion["selection"]["method_fitted"] == "stacking"
    # The validation score the gate and sweeps read is the out-of-fold one, never the served fusion
    # applied to rows it was fitted on.
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    labels = pd.read_csv(repo / "data/interim/labelled.csv")["label"].to_numpy()[split.index[split["split"] == "val"]]
    out_of_fold = np.load(repo / "data/probs/fusion/val.npy")
    reported = json.loads((repo / "metrics/evaluate/metrics.json").read_text())["val"]["fusion"]["f1_weighted"]
    assert reported == pytest.approx(f1_score(labels, out_of_fold.argmax(1), average="weighted"))
    members = {name: np.load(repo / f"data/probs/{name}/val.npy") for name in ("text", "image", "baseline")}
    if fusion["method"] == "member":
        np.testing.assert_array_equal(out_of_fold, members[fusion["member"]])
    else:
        assert not np.array_equal(apply_fusion(fusion, members), out_of_fold)


def test_head_sweeps_on_frozen_features_reuse_features_and_data(own_pipeline):
    repo = own_pipeline
    features = repo / "data/features/image/labelled.npy"
    # Nothing reads frozen features while the image model trains on pixels: none were computed.
    assert np.load(features, mmap_mode="r").shape[1] == 0
    set_params(repo, train_image={"input": "features", "epochs": 3})
    stages = ["image_features", "train_image", "train_fusion", "evaluate"]
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == stages
    assert np.load(features, mmap_mode="r").shape[1] > 0
    set_params(repo, train_image={"learning_rate": 0.01})
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == stages[1:]
    # The served image model still takes pixels: the frozen extractor followed by the new head.
    classifier = ProductClassifier(repo / "models", members=["image"])
    images = np.load(repo / "data/interim/labelled_images.npy", mmap_mode="r")[:4]
    probs = classifier.predict_image(images, np.ones(4, dtype=bool))
    assert probs.shape == (4, len(CODES)) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert "up to date" in run(["dvc", "status"], repo).stdout
