"""Inference on everything the pipeline put in models/: the one path for evaluate and the API."""

from pathlib import Path

import keras
import numpy as np

from rakuten_mm.categories import CODES
from rakuten_mm.features.images import UnreadableImageError, preprocess_image_bytes
from rakuten_mm.features.text import clean_text, model_input_texts
from rakuten_mm.models.fusion import apply_fusion
from rakuten_mm.models.io import read_json
from rakuten_mm.models.text import text_tensor


def blank_image_probabilities(n_rows: int, n_classes: int) -> np.ndarray:
    """NaN rows: products without an image get no image prediction."""
    return np.full((n_rows, n_classes), np.nan, dtype=np.float32)


def predict_in_chunks(model: keras.Model, inputs, batch_size: int) -> np.ndarray:
    """Call the model directly on fixed-size chunks (cheaper than model.predict for small inputs)."""
    outputs = [
        np.asarray(model(inputs[start:start + batch_size], training=False), dtype=np.float32)
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, len(CODES)), np.float32)


class ProductClassifier:
    """The text, image and fusion models of one models/ folder, with their preprocessing settings."""

    def __init__(self, models_dir: str | Path, batch_size: int = 256):
        models_dir = Path(models_dir)
        self.batch_size = batch_size
        self.text_model = keras.models.load_model(models_dir / "text" / "model.keras")
        self.text_config = read_json(models_dir / "text" / "preprocessing.json")
        self.image_model = keras.models.load_model(models_dir / "image" / "model.keras")
        self.image_config = read_json(models_dir / "image" / "preprocessing.json")
        self.fusion = read_json(models_dir / "fusion" / "fusion.json")

    def predict_text(self, titles, descriptions) -> np.ndarray:
        """Text-model probabilities for cleaned titles and descriptions."""
        texts = model_input_texts(titles, descriptions, self.text_config["max_description_chars"])
        return predict_in_chunks(self.text_model, text_tensor(texts), self.batch_size)

    def predict_image(self, images: np.ndarray, has_image: np.ndarray) -> np.ndarray:
        """Image-model probabilities; NaN rows where there is no image."""
        probabilities = blank_image_probabilities(len(has_image), len(CODES))
        rows = np.flatnonzero(has_image)
        if len(rows):
            probabilities[rows] = predict_in_chunks(self.image_model, np.asarray(images[rows]), self.batch_size)
        return probabilities

    def predict_proba(self, titles, descriptions, images, has_image) -> dict[str, np.ndarray]:
        """Text, image and fused probabilities for already-preprocessed products."""
        has_image = np.asarray(has_image, dtype=bool)
        text = self.predict_text(titles, descriptions)
        image = self.predict_image(images, has_image)
        return {"text": text, "image": image, "fused": apply_fusion(self.fusion, text, image, has_image)}

    def prepare_product(self, designation, description, image_bytes: bytes | None):
        """Clean raw fields and preprocess raw image bytes exactly as make_dataset does."""
        size = self.image_config["size"]
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        has_image = False
        if image_bytes:
            image = preprocess_image_bytes(
                image_bytes, size, self.image_config["white_threshold"], self.image_config["margin"]
            )
            has_image = True
        return clean_text(designation), clean_text(description), image, has_image


__all__ = ["ProductClassifier", "UnreadableImageError", "blank_image_probabilities"]
