"""No training/serving skew: raw test rows sent through /predict get the evaluate stage's probabilities."""

import zipfile

import numpy as np
import pandas as pd

from api_support import running_api
from rakuten_mm.categories import CODES
from rakuten_mm.data.archive import index_members_by_basename, read_member
from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.data.raw_layout import image_filename, read_features

TOLERANCE = 1e-5


def raw_test_rows(repo):
    """Raw fields, image bytes (None where the pipeline found no usable image) and evaluate's outputs."""
    predictions = pd.read_csv(repo / "data/predictions/test_predictions.csv", index_col=0)
    fused = np.load(repo / "data/predictions/test_fused_probabilities.npy")
    raw = read_features(repo / "data/raw/X_train_update.csv").loc[predictions.index]
    has_image = read_split_table(repo / "data/interim/labelled.csv")["has_image"].loc[predictions.index]
    with zipfile.ZipFile(repo / "data/raw/images_train.zip") as archive:
        members = index_members_by_basename(archive)
        images = [read_member(archive, members[image_filename(row.imageid, row.productid)]) if usable else None
                  for row, usable in zip(raw.itertuples(), has_image, strict=True)]
    return raw, images, predictions, fused


def test_predict_matches_the_evaluate_stage(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    raw, images, predictions, fused = raw_test_rows(repo)
    assert len(raw) > 50
    with running_api(repo, tmp_path) as api:
        for position, (row, image) in enumerate(zip(raw.itertuples(), images, strict=True)):
            data = {"designation": row.designation}
            if isinstance(row.description, str):
                data["description"] = row.description
            files = {"image": ("photo.jpg", image, "image/jpeg")} if image is not None else None
            response = api.client.post("/predict", params={"include_probabilities": "true"}, data=data,
                                       files=files, headers=api.auth)
            assert response.status_code == 200, response.text
            body = response.json()
            got = np.array([p["probability"] for p in body["probabilities"]])
            assert [p["prdtypecode"] for p in body["probabilities"]] == CODES
            np.testing.assert_allclose(got, fused[position], rtol=0, atol=TOLERANCE, err_msg=f"row {row.Index}")
            assert body["prdtypecode"] == predictions["predicted"].iloc[position]
            assert body["modalities"] == (["text", "image"] if image is not None else ["text"])
