"""Pretrained text encoders (train_text.model=encoder) on tiny presets made here, and local image weights.

The stages run as the pipeline runs them (python -m stages.X, their own params file), on the
tiny pipeline's data, writing into the test's folder; the tiny pipeline itself is left as it is.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from api_support import running_api
from encoder_support import save_distil_bert_preset, save_xlm_roberta_preset
from rakuten_mm.categories import CODES
from rakuten_mm.data.dataset import load_images, read_split_table, rows_of
from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.models.encoder import build_encoder_head, build_text_encoder, load_text_model
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.predictor import ProductClassifier, compile_forward
from rakuten_mm.models.text import assemble_text_model, text_tensor

REPO_ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
SEQUENCE_LENGTH = 32


def stage_command(name: str, params: Path, **paths) -> list[str]:
    """python -m stages.<name> with a params file and paths of the test's own."""
    options = [item for key, value in paths.items() for item in (f"--{key}", str(value))]
    return [sys.executable, "-m", f"stages.{name}", *options, "--params", str(params)]


def stage_env() -> dict:
    """The stages importable from anywhere: they run in the test's folder, where dvclive writes its files."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def stage(name: str, params: Path, **paths) -> subprocess.CompletedProcess:
    """Run one stage in params' folder (its metrics/ and plots/ land there, not in the repository)."""
    result = subprocess.run(stage_command(name, params, **paths), cwd=params.parent, env=stage_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def write_params(pipeline: Path, dest: Path, **sections) -> Path:
    """The tiny pipeline's params.yaml with some sections' keys replaced."""
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    for section, values in sections.items():
        params[section] = {**params[section], **values}
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def training_titles(pipeline: Path) -> list[str]:
    """The cleaned titles of the tiny pipeline's train split: the tiny preset's vocabulary source."""
    table = read_split_table(pipeline / "data/interim/labelled.csv")
    split = pd.read_csv(pipeline / "data/processed/split.csv", index_col="row")
    return table["title"].iloc[rows_of(split, "train")].tolist()


def test_frozen_encoder_trains_from_cached_embeddings_and_serves_raw_text(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    preset = save_distil_bert_preset(tmp_path / "preset", training_titles(pipeline))
    encoder = {"preset": str(preset), "trainable": False, "sequence_length": SEQUENCE_LENGTH, "batch_size": 64,
               "learning_rate": 0.001}
    params = write_params(pipeline, tmp_path / "params.yaml", train_text={"model": "encoder", "encoder": encoder},
                          # One member, weighted: the API's fused answer is the text model's (a stacking
                          # of one member would recalibrate it).
                          train_fusion={"members": ["text"], "method": "weighted"})
    models, probs = tmp_path / "models", tmp_path / "probs"
    # The API checks that every member's files are there, even those the fusion does not use.
    shutil.copytree(pipeline / "models", models)
    dataset, split = pipeline / "data/interim", pipeline / "data/processed/split.csv"
    stage("text_features", params, dataset=dataset, features=tmp_path / "features", model=models / "text_features")
    embeddings = np.load(tmp_path / "features" / "labelled.npy")
    table = read_split_table(dataset / "labelled.csv")
    assert embeddings.shape == (len(table), 32) and np.isfinite(embeddings).all()
    assert np.linalg.matrix_rank(embeddings[:64]) > 16, "the embeddings do not depend on the text"
    stage("train_text", params, dataset=dataset, split=split, model=models / "text", probs=probs / "text",
          features=tmp_path / "features", encoder=models / "text_features")
    stage("train_fusion", params, dataset=dataset, split=split, probs=probs, model=models / "fusion")
    stage_test = np.load(probs / "text" / "test.npy")
    test_rows = rows_of(pd.read_csv(split, index_col="row"), "test")
    # The served model reads raw strings: the embeddings the stage trained on are recomputed inside it.
    classifier = ProductClassifier(models)
    assert classifier.members == ["text"]
    part = table.iloc[test_rows]
    served = classifier.predict_text(part["title"].tolist(), part["description"].tolist())
    # The stage scored test rows with the head on their cached embeddings, the served model from their
    # texts: equal probabilities also mean that the cached rows are the labelled table's rows.
    np.testing.assert_allclose(served, stage_test, rtol=0, atol=TOLERANCE)
    # Through the API, from the raw CSV fields (the API cleans them as make_dataset did).
    raw = read_features(pipeline / "data/raw/X_train_update.csv").loc[part.index[:12]]
    with running_api(pipeline, tmp_path / "api", models_dir=models) as api:
        for position, row in enumerate(raw.itertuples()):
            data = {"designation": row.designation}
            if isinstance(row.description, str):
                data["description"] = row.description
            response = api.client.post("/predict", params={"include_probabilities": "true"}, data=data,
                                       headers=api.auth)
            assert response.status_code == 200, response.text
            got = [p["probability"] for p in response.json()["probabilities"]]
            np.testing.assert_allclose(got, stage_test[position], rtol=0, atol=TOLERANCE, err_msg=f"row {row.Index}")


def test_fine_tuned_encoder_changes_the_backbone_and_serves_its_probabilities(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    preset = save_distil_bert_preset(tmp_path / "preset", training_titles(pipeline))
    encoder = {"preset": str(preset), "trainable": True, "sequence_length": SEQUENCE_LENGTH, "batch_size": 32,
               "learning_rate": 0.003}
    params = write_params(pipeline, tmp_path / "params.yaml",
                          train_text={"model": "encoder", "encoder": encoder, "epochs": 2})
    models = tmp_path / "models"
    shutil.copytree(pipeline / "models", models)
    dataset, split = pipeline / "data/interim", pipeline / "data/processed/split.csv"
    # No text_features outputs: fine-tuning reads the preset itself.
    stage("train_text", params, dataset=dataset, split=split, model=models / "text",
          probs=tmp_path / "probs")
    saved = load_text_model(models / "text" / "model.keras")
    tuned = saved.get_layer("encoder_featurizer").get_layer("pretrained_encoder").backbone.get_weights()
    pretrained = build_text_encoder(str(preset), SEQUENCE_LENGTH, trainable=False)
    original = pretrained.get_layer("pretrained_encoder").backbone.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(tuned, original, strict=True)), "the backbone did not change"
    table = read_split_table(dataset / "labelled.csv")
    part = table.iloc[rows_of(pd.read_csv(split, index_col="row"), "test")]
    served = ProductClassifier(models, members=["text"]).predict_text(part["title"].tolist(),
                                                                       part["description"].tolist())
    np.testing.assert_allclose(served, np.load(tmp_path / "probs" / "test.npy"), rtol=0, atol=TOLERANCE)


def test_sentencepiece_family_saves_and_reloads_inside_a_text_model(tmp_path):
    words = ["chaussure", "livre", "piscine", "console", "jouet", "lampe", "rouge", "bleue", "noire", "été"]
    texts = [f"{words[i % 6]} {words[6 + i % 4]} taille {i}" for i in range(120)]
    preset = save_xlm_roberta_preset(tmp_path / "preset", texts)
    featurizer = build_text_encoder(str(preset), 16, trainable=False)
    model = assemble_text_model(featurizer, build_encoder_head(featurizer.output.shape[-1],
                                                               {"dropout": 0.1, "hidden_units": 8}, len(CODES)))
    samples = ["chaussure rouge taille 3", "Été: très longue description " * 20, ""]
    before = np.asarray(model(text_tensor(samples)))
    save_keras_model(model, tmp_path / "model.keras")
    reloaded = compile_forward(load_text_model(tmp_path / "model.keras"))
    np.testing.assert_allclose(np.asarray(reloaded(text_tensor(samples))), before, rtol=0, atol=TOLERANCE)
    assert not np.allclose(before[0], before[1]), "different texts gave the same probabilities"


def test_unreachable_preset_name_fails_in_seconds_naming_the_local_folder_alternative(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    encoder = {"preset": "distil_bert_base_multi", "trainable": False, "sequence_length": SEQUENCE_LENGTH,
               "batch_size": 64, "learning_rate": 0.001}
    params = write_params(pipeline, tmp_path / "params.yaml", train_text={"model": "encoder", "encoder": encoder})
    # Kaggle's client asks its TEST endpoint (localhost:7777, nothing listening) instead of the
    # internet, with an empty download cache: the test sends nothing off loopback.
    env = {**stage_env(), "KAGGLE_API_ENVIRONMENT": "TEST", "KAGGLEHUB_CACHE": str(tmp_path / "cache")}
    command = stage_command("text_features", params, dataset=pipeline / "data/interim",
                            features=tmp_path / "features", model=tmp_path / "model")
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert "distil_bert_base_multi" in result.stderr and "local preset folder" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert elapsed < 60, f"took {elapsed:.0f} s to give up"
    assert not (tmp_path / "features" / "labelled.npy").exists()


@pytest.mark.parametrize("preset", ["no_such_preset_name", "missing/preset/folder"])
def test_unknown_preset_names_and_missing_folders_are_refused_with_the_same_advice(preset):
    from rakuten_mm.models.encoder import PresetUnavailableError

    with pytest.raises(PresetUnavailableError, match="local preset folder"):
        build_text_encoder(preset, SEQUENCE_LENGTH, trainable=False)


def test_image_features_read_a_local_weights_file_end_to_end(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    size = yaml.safe_load((pipeline / "params.yaml").read_text())["image"]["size"]
    keras.utils.set_random_seed(7)
    # Weights of our own, saved as a user would save downloaded ImageNet weights for offline use.
    weights_model = keras.applications.MobileNetV3Small(input_shape=(size, size, 3), include_top=False,
                                                         pooling="avg", weights=None, include_preprocessing=True)
    weights_file = tmp_path / "mobilenet_v3_small_notop.weights.h5"
    weights_model.save_weights(weights_file)
    params = write_params(pipeline, tmp_path / "params.yaml",
                          image_features={"backbone": "mobilenet_v3_small", "weights": str(weights_file)},
                          train_image={"input": "features", "epochs": 2})
    dataset, split = pipeline / "data/interim", pipeline / "data/processed/split.csv"
    models = tmp_path / "models"
    shutil.copytree(pipeline / "models", models)
    stage("image_features", params, dataset=dataset, features=tmp_path / "features",
          model=models / "image_features")
    features = np.load(tmp_path / "features" / "labelled.npy")
    images = load_images(dataset / "labelled_images.npy")
    expected = weights_model.predict(np.asarray(images[:16], dtype=np.float32), verbose=0)
    np.testing.assert_allclose(features[:16], expected, rtol=1e-4, atol=1e-4)
    stage("train_image", params, dataset=dataset, features=tmp_path / "features",
          extractor=models / "image_features", split=split, model=models / "image", probs=tmp_path / "probs")
    table = read_split_table(dataset / "labelled.csv")
    test_rows = rows_of(pd.read_csv(split, index_col="row"), "test")
    served = ProductClassifier(models, members=["image"]).predict_image(images[test_rows],
                                                                        table["has_image"].to_numpy()[test_rows])
    np.testing.assert_allclose(served, np.load(tmp_path / "probs" / "test.npy"), rtol=0, atol=TOLERANCE)
