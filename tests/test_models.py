import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

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
from rakuten_mm.models.training import (
    FusedAdam, ValidationF1, array_batches, class_weights, compile_classifier, learning_rate_schedule,
    write_features,
)

TEXT_PARAMS = dict(max_tokens=200, sequence_length=12, embedding_dim=8, filters=8,
                   kernel_sizes=[2, 3], lstm_units=4, hidden_units=16, dropout=0.1)
IMAGE_PARAMS = dict(weights="none", freeze_backbone=True, filters=[4, 8], stem_pool=False, dropout=0.1,
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


def small_classifier(n_features: int, n_classes: int) -> keras.Model:
    """A seeded two-layer dense classifier."""
    set_determinism(0)
    return keras.Sequential([keras.Input((n_features,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(n_classes, activation="softmax")])


def adam_trained_weights(optimizer: keras.optimizers.Optimizer) -> list[np.ndarray]:
    """The weights of a small seeded classifier after twenty steps of the given optimizer."""
    rng = np.random.default_rng(0)
    features, labels = rng.random((64, 30)).astype("float32"), rng.integers(0, 3, 64)
    model = small_classifier(30, 3)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    model.fit(features, labels, batch_size=16, epochs=5, shuffle=False, verbose=0)
    return model.get_weights()


def test_fused_adam_takes_the_steps_keras_adam_takes():
    fused = adam_trained_weights(FusedAdam(0.01))
    reference = adam_trained_weights(keras.optimizers.Adam(0.01))
    initial = small_classifier(30, 3).get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(reference, initial))  # the steps moved the weights
    for mine, theirs in zip(fused, reference):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def test_saved_models_hold_no_optimizer_and_training_goes_on_after_saving(tmp_path):
    features, labels = np.eye(4, dtype="float32"), np.arange(4) % 2
    head = small_classifier(4, 2)
    compile_classifier(head, {"learning_rate": 0.01})
    head.fit(features, labels, epochs=1, verbose=0)
    inputs = keras.Input((4,))
    wrapper = keras.Model(inputs, head(inputs))  # as the served image model wraps its trained head
    for name, model in (("head", head), ("wrapper", wrapper)):
        save_keras_model(model, tmp_path / f"{name}.keras")
        with zipfile.ZipFile(tmp_path / f"{name}.keras") as archive:
            weights, config = archive.read("model.weights.h5"), archive.read("config.json")
        assert b"optimizer" not in weights and b"vars" in weights
        assert b"FusedAdam" not in config
        loaded = keras.models.load_model(tmp_path / f"{name}.keras")
        assert getattr(loaded, "optimizer", None) is None and not loaded.compiled
        np.testing.assert_allclose(np.asarray(loaded(features)), np.asarray(model(features)), atol=1e-6)
    assert head.optimizer.iterations.numpy() == 1 and head.compiled
    head.fit(features, labels, epochs=1, verbose=0)
    assert head.optimizer.iterations.numpy() == 2


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
    # Weights are stored (they hardly deflate), the JSON descriptions deflated.
    with zipfile.ZipFile(tmp_path / "a.keras") as saved:
        kinds = {info.filename: info.compress_type for info in saved.infolist()}
    assert kinds == {"metadata.json": zipfile.ZIP_DEFLATED, "config.json": zipfile.ZIP_DEFLATED,
                     "model.weights.h5": zipfile.ZIP_STORED}
    reloaded = keras.models.load_model(tmp_path / "a.keras", compile=False)
    assert reloaded.count_params() == keras.models.load_model(tmp_path / "a_plain.keras", compile=False).count_params()


@pytest.mark.parametrize("backbone", ["small_cnn", "mobilenet_v3_small", "efficientnet_b0"])
def test_image_backbones_give_probabilities(backbone):
    model = build_image_model({**IMAGE_PARAMS, "backbone": backbone}, size=32, n_classes=5)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (2, 5) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_stem_pool_runs_the_first_block_at_a_quarter_of_the_input_side():
    def conv_sides(stem_pool: bool) -> list[int]:
        params = {**IMAGE_PARAMS, "backbone": "small_cnn", "stem_pool": stem_pool}
        model = build_image_model(params, size=32, n_classes=5)
        return [layer.output.shape[1] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]

    assert conv_sides(stem_pool=False) == [16, 16]
    assert conv_sides(stem_pool=True) == [16, 8]


def test_flips_are_no_longer_a_layer_of_the_model():
    model = build_image_model({**IMAGE_PARAMS, "backbone": "small_cnn"}, size=32, n_classes=5)
    kinds = {type(layer).__name__ for layer in model.get_layer("augmentation").layers}
    assert kinds == {"RandomRotation", "RandomZoom"}
    no_rotation_or_zoom = {**IMAGE_PARAMS, "augment": {"enabled": True, "flip": True, "rotation": 0, "zoom": 0}}
    model = build_image_model({**no_rotation_or_zoom, "backbone": "small_cnn"}, size=32, n_classes=5)
    assert "augmentation" not in [layer.name for layer in model.layers]


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


def flipped_epoch(array: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of the first epoch of a fresh flipping pipeline, concatenated."""
    batches = list(array_batches(array, np.arange(len(array)), labels, batch_size=8, shuffle_seed=seed, flip=True))
    return np.concatenate([b[0].numpy() for b in batches]), np.concatenate([b[1].numpy() for b in batches])


def test_training_flips_mirror_about_half_the_images_reproducibly(tmp_path):
    # A memory map as in train_image; width 5 so that no image is its own mirror.
    array = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(60, 4, 5, 3))
    array[:] = np.random.default_rng(0).integers(0, 256, size=array.shape, dtype=np.uint8)
    original = np.array(array)
    labels = np.arange(60, dtype=np.int32)  # the label of a row is its own number
    images, batch_labels = flipped_epoch(array, labels, seed=3)
    mirrored = np.array([(image == original[label][:, ::-1]).all() for image, label in zip(images, batch_labels)])
    unchanged = np.array([(image == original[label]).all() for image, label in zip(images, batch_labels)])
    assert (mirrored ^ unchanged).all() and 15 <= mirrored.sum() <= 45
    again, again_labels = flipped_epoch(array, labels, seed=3)
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_labels, batch_labels)
    assert not np.array_equal(flipped_epoch(array, labels, seed=4)[0], images)
    np.testing.assert_array_equal(np.asarray(array), original)  # the source rows are never flipped
    with pytest.raises(ValueError, match="shuffle_seed"):
        array_batches(array, np.arange(60), labels, batch_size=8, shuffle_seed=None, flip=True)


def test_flips_keep_the_epoch_order_of_unflipped_batches():
    array = np.arange(30, dtype=np.uint8).reshape(30, 1, 1, 1) * np.ones((1, 2, 3, 3), np.uint8)
    rows, labels = np.arange(30), np.arange(30, dtype=np.int32)
    plain = [b[1].numpy() for b in array_batches(array, rows, labels, 7, shuffle_seed=5)]
    flipped = [b[1].numpy() for b in array_batches(array, rows, labels, 7, shuffle_seed=5, flip=True)]
    np.testing.assert_array_equal(np.concatenate(plain), np.concatenate(flipped))


def test_cosine_learning_rate_decays_from_the_rate_towards_zero():
    params = {"learning_rate": 0.01, "epochs": 4, "learning_rate_schedule": "cosine"}
    (scheduler,) = learning_rate_schedule(params)
    rates = [scheduler.schedule(epoch, None) for epoch in range(4)]
    np.testing.assert_allclose(rates, [0.01, 0.0085355, 0.005, 0.0014645], rtol=1e-4)
    assert learning_rate_schedule({**params, "learning_rate_schedule": "constant"}) == []
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        learning_rate_schedule({**params, "learning_rate_schedule": "linear"})


def test_shared_object_ids_are_renumbered_consistently():
    config = b'{"a": {"shared_object_id": 140475259569424}, "b": {"shared_object_id": 999}, ' \
             b'"c": {"shared_object_id": 140475259569424}}'
    assert renumber_shared_objects(config) == (
        b'{"a": {"shared_object_id": 1}, "b": {"shared_object_id": 2}, "c": {"shared_object_id": 1}}')


def test_one_validation_pass_gives_the_loss_and_accuracy_keras_evaluate_gives():
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(90, 6)).astype(np.float32)
    labels = rng.integers(0, 4, size=90).astype(np.int32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    batches = array_batches(inputs, np.arange(90), None, 32, None)
    callback = ValidationF1(batches, labels)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    keras_loss, keras_accuracy = model.evaluate(inputs, labels, batch_size=32, verbose=0)
    assert logs["val_loss"] == pytest.approx(keras_loss, rel=1e-5)
    assert logs["val_accuracy"] == pytest.approx(keras_accuracy, abs=1e-6)
    assert logs["val_f1_weighted"] == pytest.approx(f1_score(labels, logs_predicted(model, inputs), average="weighted"))


def logs_predicted(model, inputs):
    """The model's top class per row, by Keras itself."""
    return model(inputs).numpy().argmax(1)
