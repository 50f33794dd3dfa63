import subprocess
import sys

import keras
import numpy as np
import pytest

from pipeline_utils import REPO_ROOT
from rakuten_mm.models.image import (
    PretrainedWeightsUnavailableError,
    build_feature_extractor,
    build_feature_head,
    build_image_model,
    compose_image_model,
)
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.keras_files import renumber_shared_objects, save_keras_model
from rakuten_mm.models.text import (
    adapt_vectorizer, assemble_text_model, build_featurizer, build_sequence_head, build_tfidf_head, text_tensor,
)
from rakuten_mm.models.training import array_batches, class_weights, write_features

TEXT_PARAMS = dict(max_tokens=200, sequence_length=12, embedding_dim=8, filters=8,
                   kernel_sizes=[2, 3], lstm_units=4, hidden_units=16, dropout=0.1)
IMAGE_PARAMS = dict(weights="none", freeze_backbone=True, filters=[4, 8], dropout=0.1,
                    augment={"enabled": True, "flip": True, "rotation": 0.05, "zoom": 0.1})
TEXTS = ["chaise en bois massif"] * 20 + ["roman policier poche"] * 20


def sequence_text_model(kind: str, texts: list[str], params: dict, n_classes: int) -> keras.Model:
    """An end-to-end cnn or bilstm text classifier (untrained head), vectorizer adapted on texts."""
    featurizer = build_featurizer(adapt_vectorizer(texts, params))
    return assemble_text_model(featurizer, build_sequence_head(kind, params, featurizer, n_classes))


@pytest.mark.parametrize("kind", ["cnn", "bilstm"])
def test_sequence_text_models_learn_a_trivial_task_and_reload_identically(kind, tmp_path):
    set_determinism(0)
    labels = np.array([0] * 20 + [1] * 20)
    model = sequence_text_model(kind, TEXTS, TEXT_PARAMS, n_classes=3)
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(text_tensor(TEXTS), labels, epochs=8, verbose=0)
    probe = text_tensor(["chaise bois", "roman poche"])
    probs = np.asarray(model(probe))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert list(probs.argmax(1)) == [0, 1]
    save_keras_model(model, tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(keras.models.load_model(tmp_path / "m.keras")(probe)), probs, atol=1e-6)


SAVE_SCRIPT = f"""
import sys
from {save_keras_model.__module__} import save_keras_model
from {set_determinism.__module__} import set_determinism
from {build_tfidf_head.__module__} import build_tfidf_head
set_determinism(0)
model = build_tfidf_head(50, {{"dropout": 0.1, "hidden_units": 4, "seed": 0}}, n_classes=2)
save_keras_model(model, sys.argv[1] + ".keras")
model.save(sys.argv[1] + "_plain.keras")
"""


def test_saved_models_are_byte_identical_across_processes(tmp_path):
    # Two processes, seconds apart and with other memory addresses: what a rerun of a stage sees.
    for name in ("a", "b"):
        result = subprocess.run([sys.executable, "-c", SAVE_SCRIPT, str(tmp_path / name)], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    # The check can tell: Keras's own saves of the same model differ (save date, object ids).
    assert (tmp_path / "a_plain.keras").read_bytes() != (tmp_path / "b_plain.keras").read_bytes()
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()


@pytest.mark.parametrize("backbone", ["small_cnn", "mobilenet_v3_small", "efficientnet_b0"])
def test_image_backbones_give_probabilities(backbone):
    model = build_image_model({**IMAGE_PARAMS, "backbone": backbone}, size=32, n_classes=5)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (2, 5) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_unknown_backbone_is_rejected():
    with pytest.raises(ValueError, match="train_image.backbone"):
        build_image_model({**IMAGE_PARAMS, "backbone": "resnet9000"}, size=32, n_classes=5)


def test_imagenet_weights_offline_fail_clearly(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_network)
    params = {**IMAGE_PARAMS, "backbone": "mobilenet_v3_small", "weights": "imagenet"}
    with pytest.raises(PretrainedWeightsUnavailableError, match="weights=none"):
        build_image_model(params, size=32, n_classes=5)


def test_frozen_features_and_head_compose_into_the_served_model(tmp_path):
    params = {"backbone": "mobilenet_v3_small", "weights": "none"}
    extractor = build_feature_extractor(params, size=32)
    images = np.random.default_rng(1).integers(0, 256, size=(5, 32, 32, 3)).astype(np.uint8)
    features = write_features(extractor, images, batch_size=2, path=tmp_path / "features.npy")
    assert features.shape == (5, extractor.output_shape[-1])
    head = build_feature_head(features.shape[1], {"dropout": 0.1, "head_units": 8}, n_classes=4)
    served = compose_image_model(extractor, head)
    # The served model on pixels must give what the head gave on the stored features.
    stored = np.load(tmp_path / "features.npy", mmap_mode="r")
    np.testing.assert_allclose(served.predict(images, verbose=0), head.predict(stored, verbose=0), atol=1e-5)
    assert extractor.trainable_weights == [] and head.trainable_weights


def test_missing_weights_file_fails_clearly(tmp_path):
    params = {"backbone": "mobilenet_v3_small", "weights": str(tmp_path / "absent.weights.h5")}
    with pytest.raises(PretrainedWeightsUnavailableError, match="absent.weights.h5"):
        build_feature_extractor(params, size=32)


def test_class_weights_counter_the_imbalance():
    labels = np.array([0] * 90 + [1] * 10)
    balanced = class_weights(labels, 2, "balanced")
    assert balanced[1] / balanced[0] == pytest.approx(9.0)
    assert class_weights(labels, 2, "sqrt")[1] / class_weights(labels, 2, "sqrt")[0] == pytest.approx(3.0)
    assert class_weights(labels, 2, "none") is None


def test_array_batches_keep_rows_aligned_with_labels():
    array = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1) * np.ones((1, 2, 2, 3), np.uint8)
    rows = np.array([40, 3, 17, 8, 25, 33, 1])
    labels = rows.astype(np.int32)  # the label of a row is its own number
    seen = []
    for images, batch_labels in array_batches(array, rows, labels, batch_size=3, shuffle_seed=7):
        np.testing.assert_array_equal(images.numpy()[:, 0, 0, 0], batch_labels.numpy())
        seen.extend(batch_labels.numpy().tolist())
    assert sorted(seen) == sorted(rows.tolist()) and seen != rows.tolist()
    ordered = np.concatenate([b.numpy()[:, 0, 0, 0] for b in array_batches(array, rows, None, 3, None)])
    np.testing.assert_array_equal(ordered, rows)


def test_shared_object_ids_are_renumbered_consistently():
    config = b'{"a": {"shared_object_id": 140475259569424}, "b": {"shared_object_id": 999}, ' \
             b'"c": {"shared_object_id": 140475259569424}}'
    assert renumber_shared_objects(config) == (
        b'{"a": {"shared_object_id": 1}, "b": {"shared_object_id": 2}, "c": {"shared_object_id": 1}}')
