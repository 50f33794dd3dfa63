"""A models/ folder as an MLflow pyfunc model: the package's ProductClassifier behind a DataFrame.

Input columns: `designation` (required), `description`, `image` (encoded image bytes) and
`image_path` (a file to read when `image` is empty), all optional. Output: one row per product
with the fused top-1 `prdtypecode`, its `category` name and its `probability`.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.features.images import UnreadableImageError

# Key of the models/ folder in the pyfunc model's artifacts.
MODELS_ARTIFACT = "models"
SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec("string", "designation"),
        ColSpec("string", "description", required=False),
        ColSpec("binary", "image", required=False),
        ColSpec("string", "image_path", required=False),
    ]),
    outputs=Schema([ColSpec("long", "prdtypecode"), ColSpec("string", "category"),
                    ColSpec("double", "probability")]),
)


def optional_cell(row: pd.Series, column: str):
    """A row's value in an optional column; None when the column is absent or the cell empty."""
    value = row.get(column)
    if isinstance(value, (bytes, bytearray, str)):
        return value or None
    return None if value is None or pd.isna(value) else value


def image_bytes_of(row: pd.Series) -> bytes | None:
    """The product's encoded image: the `image` bytes, else the file at `image_path`, else None."""
    data = optional_cell(row, "image")
    if data is not None:
        return bytes(data)
    path = optional_cell(row, "image_path")
    return Path(path).read_bytes() if path is not None else None


def predictions_frame(fused: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Top-1 code, category name and probability per row of fused probabilities."""
    # argmax keeps the first of tied classes, as evaluate and the API do.
    top = fused.argmax(axis=1)
    codes = [CODES[i] for i in top]
    return pd.DataFrame({
        "prdtypecode": np.array(codes, dtype=np.int64),
        "category": [CATEGORY_NAMES[code] for code in codes],
        "probability": fused[np.arange(len(top)), top].astype(np.float64),
    }, index=index)


class ProductClassifierModel(PythonModel):
    """pyfunc wrapper: raw products in a DataFrame in, fused predictions out."""

    def load_context(self, context) -> None:
        """Load the text, image and fusion models from the logged models/ folder."""
        # Imported here: logging the model (which runs this module) then never loads TensorFlow.
        from rakuten_mm.models.predictor import ProductClassifier

        self.classifier = ProductClassifier(context.artifacts[MODELS_ARTIFACT])

    def prepare_rows(self, model_input: pd.DataFrame) -> list[tuple]:
        """Clean the text and preprocess the image of every row; ValueError names a bad image's row."""
        prepared = []
        for position, (_, row) in enumerate(model_input.iterrows()):
            try:
                prepared.append(self.classifier.prepare_product(
                    row["designation"], optional_cell(row, "description"), image_bytes_of(row)))
            except (UnreadableImageError, OSError) as error:
                raise ValueError(f"row {position}: unusable image ({error})") from error
        return prepared

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Predicted prdtypecode, category and top-1 probability for each product row."""
        if model_input.empty:
            return predictions_frame(np.zeros((0, len(CODES)), np.float32), model_input.index)
        titles, descriptions, images, has_image = zip(*self.prepare_rows(model_input), strict=True)
        fused = self.classifier.predict_proba(titles, descriptions, np.stack(images),
                                              np.array(has_image, dtype=bool))["fused"]
        return predictions_frame(fused, model_input.index)
