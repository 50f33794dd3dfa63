"""What the API added to the package: the traced inference path and the image refusals."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from api_support import product_jpeg
from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.features.images import (
    ImageTooLargeError, UnreadableImageError, UnsupportedImageFormatError, decode_jpeg_scaled,
    preprocess_image_bytes,
)
from rakuten_mm.features.tfidf import load_features
from rakuten_mm.models.predictor import MEMBERS, ProductClassifier, forward_in_chunks
from rakuten_mm.models.training import sparse_batches
from rakuten_mm.serving.config import IMAGE_FORMATS


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def classifier(tiny_pipeline):
    """Every member loaded, whichever the tiny fusion serves: these tests check each member's path."""
    repo, _ = tiny_pipeline
    return ProductClassifier(repo / "models", members=list(MEMBERS))


def test_served_forward_passes_match_the_keras_models(classifier):
    rows = classifier.tfidf_rows(["piscine tubulaire ronde", "lot de livres", ""], ["", "très bon état", ""])
    keras_text = np.asarray(classifier.text_model.predict(sparse_batches(rows, None, 8, None), verbose=0))
    np.testing.assert_allclose(forward_in_chunks(classifier.text_forward, rows, 2), keras_text, atol=1e-6)
    size = classifier.image_config["size"]
    pixels = np.random.default_rng(0).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    np.testing.assert_allclose(forward_in_chunks(classifier.image_forward, pixels, 2),
                               np.asarray(classifier.image_model(pixels.astype(np.float32), training=False)),
                               atol=1e-6)


def test_served_tfidf_rows_are_the_rows_the_pipeline_trained_on(classifier, tiny_pipeline):
    repo, _ = tiny_pipeline
    table = read_split_table(repo / "data" / "interim" / "labelled.csv").iloc[:60]
    trained = load_features(repo / "data" / "features" / "tfidf" / "labelled.npz")[:60]
    served = classifier.tfidf_rows(list(table["title"]), list(table["description"]))
    assert served.shape == trained.shape and served.nnz > 0
    np.testing.assert_allclose(served.toarray(), trained.toarray(), atol=1e-6)


def test_one_product_gets_the_same_probabilities_alone_or_in_a_batch(classifier):
    products = [classifier.prepare_product(f"produit {i}", "", product_jpeg(200, seed=i)) for i in range(4)]
    titles, descriptions, images, has_image = (list(column) for column in zip(*products))
    batch = classifier.predict_proba(titles, descriptions, np.stack(images), np.array(has_image))["fused"]
    for i in range(4):
        alone = classifier.predict_proba(titles[i:i + 1], descriptions[i:i + 1], images[i][None],
                                         np.array(has_image[i:i + 1]))["fused"]
        np.testing.assert_allclose(alone[0], batch[i], atol=1e-6)


def test_empty_inputs_give_empty_outputs(classifier):
    rows = classifier.tfidf_rows([], [])
    assert forward_in_chunks(classifier.text_forward, rows, 8).shape == (0, 27)
    assert classifier.predict_proba([], [], np.zeros((0, 8, 8, 3), np.uint8), [])["fused"].shape == (0, 27)


def test_a_decompression_bomb_is_refused_before_any_decoding(monkeypatch):
    bomb = encode(Image.new("L", (4000, 3000), 255), "PNG")

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="4000x3000"):
        preprocess_image_bytes(bomb, 32, max_pixels=10_000_000)


def test_the_pixel_limit_is_inclusive_and_can_be_lifted():
    image = encode(Image.new("RGB", (100, 50), "white"), "PNG")
    assert preprocess_image_bytes(image, 16, max_pixels=None).shape == (16, 16, 3)
    assert preprocess_image_bytes(image, 16, max_pixels=5000).shape == (16, 16, 3)
    with pytest.raises(ImageTooLargeError):
        preprocess_image_bytes(image, 16, max_pixels=4999)


def test_formats_restrict_the_decoders_only():
    gif = encode(Image.new("RGB", (40, 40), "blue"), "GIF")
    assert decode_jpeg_scaled(gif, 8, formats=("GIF",)).size == (40, 40)
    # The pipeline's default is the API's list: neither reads a GIF.
    with pytest.raises(UnsupportedImageFormatError):
        decode_jpeg_scaled(gif, 8)
    with pytest.raises(UnsupportedImageFormatError):
        decode_jpeg_scaled(gif, 8, formats=IMAGE_FORMATS)
    jpeg = product_jpeg(120)
    np.testing.assert_array_equal(preprocess_image_bytes(jpeg, 32),
                                  preprocess_image_bytes(jpeg, 32, max_pixels=10**6, formats=IMAGE_FORMATS))


def test_refusals_are_unreadable_image_errors_for_the_pipeline():
    # preprocess_archive marks a member unreadable on UnreadableImageError: the subclasses must be.
    assert issubclass(UnsupportedImageFormatError, UnreadableImageError)
    assert issubclass(ImageTooLargeError, UnreadableImageError)
    with pytest.raises(UnsupportedImageFormatError):
        preprocess_image_bytes(b"not an image", 32)
    with pytest.raises(UnreadableImageError):
        preprocess_image_bytes(product_jpeg()[:1500], 32)


def test_prepare_product_passes_the_limits_on(classifier):
    large = encode(Image.new("RGB", (300, 300), "white"), "PNG")
    with pytest.raises(ImageTooLargeError):
        classifier.prepare_product("titre", "", large, max_image_pixels=50_000)
    title, description, image, has_image = classifier.prepare_product("  Titre &amp; <b>gras</b> ", None, None)
    assert (title, description, has_image) == ("Titre & gras", "", False)
