"""The shared tf-idf featurizer and the tf-idf head that reads its sparse rows."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import sparse

from pipeline_utils import REPO_ROOT
from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.features.text import clean_text, model_input_texts
import pandas as pd

from rakuten_mm.features.tfidf import TfidfFeaturizer, featurizer_rows, load_features, save_features
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.sklearn_files import save_sklearn_model
from rakuten_mm.models.text import build_tfidf_head, csr_matmul, dense_stack_forward
from rakuten_mm.models.training import sparse_batches

PARAMS = {"word_ngrams": [1, 2], "char_ngrams": [3, 5], "min_df": 1, "word_max_features": 500,
          "char_max_features": 2000, "sublinear_tf": True, "max_description_chars": 600,
          "title_repeats": 1}
TEXTS = ["piscine tubulaire ronde . pompe de filtration", "livre de poche, roman policier", "jouet en bois",
         "jeu vidéo ps4 édition collector", "chaise de jardin pliante", "piscine piscine piscine",
         "coque iphone 12 silicone", "lot de 3 livres anciens"]
HEAD_PARAMS = {"dropout": 0.0, "hidden_units": 8, "seed": 0}


def sklearn_rows(featurizer: TfidfFeaturizer, texts) -> sparse.csr_matrix:
    """scikit-learn's own transform of the fitted union: the reference the fast path must match."""
    return featurizer.union.transform(np.asarray(texts, dtype=object)).tocsr()


def test_fast_transform_equals_scikit_learns(real_sample):
    raw = read_features(real_sample / "X_train_update.csv")
    texts = model_input_texts([clean_text(value) for value in raw["designation"]],
                              [clean_text(value) for value in raw["description"]], 600)
    featurizer, _ = TfidfFeaturizer.fit_transform(texts, np.arange(200), {**PARAMS, "min_df": 2})
    # Unseen products, an empty text and one made of unknown n-grams only.
    probe = [*texts[200:260], "", "zzqx wwvk"]
    fast, reference = featurizer.transform(probe), sklearn_rows(featurizer, probe)
    assert fast.shape == reference.shape and fast.dtype == np.float32
    np.testing.assert_array_equal(fast.indptr, reference.indptr)
    np.testing.assert_array_equal(fast.indices, reference.indices)
    np.testing.assert_allclose(fast.data, reference.data, rtol=1e-5)
    assert fast[-2].nnz == 0 and fast[-1].nnz == 0
    # Each block is L2-normalised apart: a row with words and characters has norm sqrt(2).
    np.testing.assert_allclose(sparse.linalg.norm(fast[0]), np.sqrt(2), rtol=1e-5)


def test_fit_transform_fits_on_the_given_rows_and_keeps_the_texts_order():
    texts = [*TEXTS, "aquarium lumineux"]
    fit_rows = np.array([6, 0, 2, 4, 1, 3, 5, 7])
    featurizer, features = TfidfFeaturizer.fit_transform(texts, fit_rows, PARAMS)
    assert "aquarium" not in featurizer.union.transformer_list[0][1].vocabulary_
    np.testing.assert_allclose(features.toarray(), sklearn_rows(featurizer, texts).toarray(), rtol=1e-5)


@pytest.mark.parametrize("fit_on", ["train", "train_val"])
def test_the_featurizer_learns_validation_terms_only_when_fitted_on_train_val_and_never_test_terms(fit_on):
    texts = [*TEXTS, "aquarium lumineux", "trottinette électrique"]
    split = pd.DataFrame({"split": ["train"] * len(TEXTS) + ["val", "test"]})
    featurizer, _ = TfidfFeaturizer.fit_transform(texts, featurizer_rows(split, fit_on), PARAMS)
    words = featurizer.union.transformer_list[0][1].vocabulary_
    assert ("aquarium" in words) == (fit_on == "train_val")
    assert "trottinette" not in words
    with pytest.raises(ValueError, match="fit_on"):
        featurizer_rows(split, "all")


def test_features_and_featurizer_round_trip(tmp_path):
    featurizer, features = TfidfFeaturizer.fit_transform(TEXTS, np.arange(len(TEXTS)), PARAMS)
    save_features(features, tmp_path / "rows.npz")
    assert (load_features(tmp_path / "rows.npz") != features).nnz == 0
    folder = tmp_path / "models"  # does not exist yet: save creates it
    featurizer.save(folder / "featurizer.skops")
    # The terms are in the JSON file, not in the .skops one; saving leaves the featurizer whole.
    assert "piscine" in (folder / "featurizer.vocabulary.json").read_text()
    assert b"piscine" not in (folder / "featurizer.skops").read_bytes()
    loaded = TfidfFeaturizer.load(folder / "featurizer.skops")
    for probe in (["piscine ronde bleue"], TEXTS):
        assert (loaded.transform(probe) != featurizer.transform(probe)).nnz == 0
    assert loaded.union.transformer_list[1][1].vocabulary_ == featurizer.union.transformer_list[1][1].vocabulary_


def test_a_featurizer_saved_whole_in_one_skops_file_still_loads(tmp_path):
    # Model folders written before the vocabulary file (registered versions, rollout candidates).
    featurizer, _ = TfidfFeaturizer.fit_transform(TEXTS, np.arange(len(TEXTS)), PARAMS)
    save_sklearn_model(featurizer.union, tmp_path / "featurizer.skops")
    loaded = TfidfFeaturizer.load(tmp_path / "featurizer.skops")
    assert (loaded.transform(TEXTS) != featurizer.transform(TEXTS)).nnz == 0


SAVE_SCRIPT = """
import sys
import numpy as np
from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.features.text import clean_text, model_input_texts
from rakuten_mm.features.tfidf import TfidfFeaturizer
featurizer, _ = TfidfFeaturizer.fit_transform({texts!r}, np.arange({n}), {params!r})
featurizer.save(sys.argv[1])
"""


def test_the_featurizer_saves_byte_identically_across_processes(tmp_path):
    # Other string hash seeds and memory addresses: what a rerun of the stage sees.
    script = SAVE_SCRIPT.format(texts=TEXTS, n=len(TEXTS), params=PARAMS)
    for name, seed in (("a", "1"), ("b", "2")):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{name}.skops")], cwd=REPO_ROOT, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
    assert (tmp_path / "a.vocabulary.json").read_bytes() == (tmp_path / "b.vocabulary.json").read_bytes()


def test_csr_matmul_and_its_gradient_equal_the_dense_product():
    rows = sparse.random(6, 40, density=0.2, format="csr", dtype=np.float32, random_state=0)
    coo = rows.tocoo()
    inputs = tf.SparseTensor(np.stack([coo.row, coo.col], 1).astype(np.int64), coo.data, coo.shape)
    kernel = tf.Variable(np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    upstream = tf.constant(np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        product = csr_matmul(inputs, kernel)
        loss = tf.reduce_sum(product * upstream)
    np.testing.assert_allclose(product.numpy(), rows.toarray() @ kernel.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, kernel).numpy(), rows.toarray().T @ upstream.numpy(),
                               rtol=1e-5, atol=1e-6)


def trained_head(features: sparse.csr_matrix, labels: np.ndarray) -> keras.Model:
    """A small tf-idf head fitted on sparse batches of the given rows."""
    set_determinism(0)
    head = build_tfidf_head(features.shape[1], {**HEAD_PARAMS, "dropout": 0.2}, n_classes=3)
    head.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    head.fit(sparse_batches(features, labels, 4, shuffle_seed=0), epochs=15, verbose=0)
    return head


def test_the_tfidf_head_learns_from_sparse_rows_and_scipy_serves_it_identically(tmp_path):
    featurizer, features = TfidfFeaturizer.fit_transform(TEXTS, np.arange(len(TEXTS)), PARAMS)
    labels = np.array([0, 1, 2, 2, 0, 0, 2, 1])
    head = trained_head(features, labels)
    probe = featurizer.transform(["piscine ronde", "roman de poche", "jeu ps4"])
    keras_probs = np.asarray(head.predict(sparse_batches(probe, None, 8, None), verbose=0))
    assert keras_probs.argmax(1).tolist() == [0, 1, 2]
    save_keras_model(head, tmp_path / "head.keras")
    reloaded = keras.models.load_model(tmp_path / "head.keras")
    np.testing.assert_allclose(dense_stack_forward(reloaded)(probe), keras_probs, atol=1e-6)
    assert dense_stack_forward(reloaded)(probe[:0]).shape == (0, 3)


def test_a_head_that_is_no_dense_stack_is_refused():
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.BatchNormalization()(inputs)))
    with pytest.raises(ValueError, match="not a dense stack"):
        dense_stack_forward(model)


def test_the_kernel_gradient_is_bitwise_repeatable():
    # TensorFlow's adjoint CSR product sums in a thread-dependent order: at this size two calls
    # already differ in the last bits, and a forced rerun of train_text would train another model.
    coo = sparse.random(512, 60000, density=0.01, format="csr", dtype=np.float32, random_state=0).tocoo()
    inputs = tf.SparseTensor(np.stack([coo.row, coo.col], 1).astype(np.int64), coo.data, coo.shape)
    kernel = tf.Variable(tf.zeros((60000, 64)))
    upstream = tf.constant(np.random.default_rng(0).normal(size=(512, 64)).astype(np.float32))
    gradients = []
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(csr_matmul(inputs, kernel) * upstream)
        gradients.append(tape.gradient(loss, kernel).numpy())
    assert all(np.array_equal(gradient, gradients[0]) for gradient in gradients[1:])
