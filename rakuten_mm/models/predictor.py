"""Inference on everything the pipeline put in models/: the one path for evaluate and the API."""

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from rakuten_mm.categories import CODES
from rakuten_mm.features.images import (
    ACCEPTED_FORMATS, DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, UnreadableImageError, preprocess_image_bytes,
)
from rakuten_mm.features.text import clean_text, model_input_texts
from rakuten_mm.features.tfidf import TfidfFeaturizer
from rakuten_mm.jsonfiles import read_json
from rakuten_mm.models.baseline import baseline_probabilities
from rakuten_mm.models.classes import check_classes, check_model_classes
from rakuten_mm.models.encoder import load_text_model
from rakuten_mm.models.fusion import apply_fusion, members_used
from rakuten_mm.models.image import blank_image_probabilities
from rakuten_mm.models.sklearn_files import load_sklearn_model
from rakuten_mm.models.text import dense_stack_forward, text_tensor

# Every model the fusion can combine, each saved in models/<name>/.
MEMBERS = ("text", "image", "baseline")


def forward_in_chunks(forward: Callable, inputs, batch_size: int) -> np.ndarray:
    """Run an inference function on fixed-size chunks of inputs and stack the float32 outputs."""
    if 0 < inputs.shape[0] <= batch_size:
        # One chunk: no slicing (slicing an eager string tensor costs more than a small model call).
        return np.asarray(forward(inputs), dtype=np.float32)
    outputs = [
        np.asarray(forward(inputs[start:start + batch_size]), dtype=np.float32)
        for start in range(0, inputs.shape[0], batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, len(CODES)), np.float32)


def compile_forward(model: keras.Model, input_dtype: tf.DType | None = None) -> Callable:
    """The model's inference pass traced once into a TensorFlow graph, for any batch size."""
    # Calling a Keras model eagerly dispatches every layer from Python (about 10 ms a call even
    # for a tiny model); the traced graph runs the same ops in well under a millisecond, and its
    # concrete function also skips tf.function's per-call signature matching.
    # input_dtype lets callers pass e.g. uint8 pixels: they are cast to the model's dtype inside
    # the graph, exactly as Keras casts them in an eager call, without a float copy of the batch.
    model_input = model.inputs[0]
    spec = tf.TensorSpec((None, *model_input.shape[1:]), input_dtype or model_input.dtype)

    @tf.function(input_signature=[spec], autograph=False)
    def forward(batch):
        return model(tf.cast(batch, model_input.dtype), training=False)

    return forward.get_concrete_function()


class ProductClassifier:
    """The member models of one models/ folder and their fusion, with their preprocessing settings.

    Only the members the fusion uses are loaded and run, unless `members` names others (evaluate
    scores every member).
    """

    def __init__(self, models_dir: str | Path, batch_size: int = 256, members: list[str] | None = None):
        models_dir = Path(models_dir)
        self.batch_size = batch_size
        self.fusion = read_json(models_dir / "fusion" / "fusion.json")
        check_classes(self.fusion.get("classes"), str(models_dir / "fusion" / "fusion.json"))
        self.members = members if members is not None else members_used(self.fusion)
        unknown = sorted(set(self.members) - set(MEMBERS))
        if unknown:
            raise ValueError(f"unknown member models {unknown}: expected some of {MEMBERS}")
        for name in self.members:
            check_model_classes(models_dir / name)
        # The image settings are needed to preprocess uploads even when the fusion ignores images.
        self.image_config = read_json(models_dir / "image" / "preprocessing.json")
        self.text_config = read_json(models_dir / "text" / "preprocessing.json")
        text_reads_tfidf = "text" in self.members and self.text_config.get("input") == "tfidf"
        self.featurizer = None
        if text_reads_tfidf or "baseline" in self.members:
            # One featurizer for both members: a product's text is featurized once per call.
            self.featurizer = TfidfFeaturizer.load(models_dir / "tfidf" / "featurizer.skops")
            # Model folders written before title_repeats existed joined the title once.
            self.tfidf_config = {"title_repeats": 1, **read_json(models_dir / "tfidf" / "preprocessing.json")}
        if "text" in self.members:
            self.text_model = load_text_model(models_dir / "text" / "model.keras")
            # Traced once here (or run in SciPy for the tf-idf head); evaluate and the API both go
            # through these same functions.
            self.text_forward = (dense_stack_forward(self.text_model) if text_reads_tfidf
                                 else compile_forward(self.text_model))
        if "image" in self.members:
            self.image_model = keras.models.load_model(models_dir / "image" / "model.keras")
            self.image_forward = compile_forward(self.image_model, tf.uint8)
        if "baseline" in self.members:
            self.baseline_model = load_sklearn_model(models_dir / "baseline" / "model.skops")

    def tfidf_rows(self, titles, descriptions):
        """The shared featurizer's CSR rows for cleaned titles and descriptions (None without one)."""
        if self.featurizer is None:
            return None
        config = self.tfidf_config
        return self.featurizer.transform(model_input_texts(
            titles, descriptions, config["max_description_chars"], config["title_repeats"]))

    def predict_text(self, titles, descriptions, tfidf_rows=None) -> np.ndarray:
        """Text-model probabilities: from the tf-idf rows for a tf-idf head, else from the cleaned strings."""
        if self.text_config.get("input") == "tfidf":
            return forward_in_chunks(self.text_forward, tfidf_rows, self.batch_size)
        texts = model_input_texts(titles, descriptions, self.text_config["max_description_chars"])
        return forward_in_chunks(self.text_forward, text_tensor(texts), self.batch_size)

    def predict_baseline(self, tfidf_rows) -> np.ndarray:
        """Calibrated linear SVM probabilities from the tf-idf rows."""
        return baseline_probabilities(self.baseline_model, tfidf_rows, len(CODES))

    def predict_image(self, images: np.ndarray, has_image: np.ndarray) -> np.ndarray:
        """Image-model probabilities; NaN rows where there is no image."""
        probabilities = blank_image_probabilities(len(has_image), len(CODES))
        rows = np.flatnonzero(has_image)
        if len(rows):
            pixels = np.asarray(images[rows], dtype=np.uint8)
            probabilities[rows] = forward_in_chunks(self.image_forward, pixels, self.batch_size)
        return probabilities

    def predict_proba(self, titles, descriptions, images, has_image) -> dict[str, np.ndarray]:
        """Each loaded member's probabilities and the fused ones ("fused") for preprocessed products."""
        has_image = np.asarray(has_image, dtype=bool)
        probs = {}
        tfidf_rows = self.tfidf_rows(titles, descriptions)
        if "text" in self.members:
            probs["text"] = self.predict_text(titles, descriptions, tfidf_rows)
        if "baseline" in self.members:
            probs["baseline"] = self.predict_baseline(tfidf_rows)
        if "image" in self.members:
            probs["image"] = self.predict_image(images, has_image)
        return {**probs, "fused": apply_fusion(self.fusion, probs)}

    def prepare_product(
        self,
        designation,
        description,
        image_bytes: bytes | None,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        image_formats: tuple[str, ...] = ACCEPTED_FORMATS,
        max_image_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
    ):
        """Clean raw fields and preprocess raw image bytes exactly as make_dataset does."""
        # The limits only refuse images, before decoding them (UnreadableImageError subclasses):
        # accepted ones are preprocessed the same way; the defaults are make_dataset's.
        size = self.image_config["size"]
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        has_image = False
        if image_bytes:
            image = preprocess_image_bytes(
                image_bytes, size, self.image_config["white_threshold"], self.image_config["margin"],
                max_pixels=max_image_pixels, formats=image_formats, max_aspect_ratio=max_image_aspect_ratio,
            )
            has_image = True
        return clean_text(designation), clean_text(description), image, has_image

    def warm_up(self) -> None:
        """Predict one blank product with and one without image, so no request pays for tracing."""
        size = self.image_config["size"]
        images = np.full((2, size, size, 3), 255, dtype=np.uint8)
        self.predict_proba(["", ""], ["", ""], images, np.array([True, False]))


__all__ = ["ProductClassifier", "UnreadableImageError", "blank_image_probabilities", "compile_forward"]
