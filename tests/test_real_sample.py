"""The data stages on the 540 real products beside the repository (skipped where absent)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline_utils import copy_repository, run

pytestmark = pytest.mark.slow


def spans_frame(images: np.ndarray, white: int = 240, slack: int = 2) -> np.ndarray:
    """Per image: does non-white content reach both opposite edges, horizontally or vertically?"""
    content = (images < white).any(axis=-1)
    size = images.shape[1]

    def reaches_both_edges(along_axis: np.ndarray) -> np.ndarray:
        first = along_axis.argmax(axis=1)
        last = size - 1 - along_axis[:, ::-1].argmax(axis=1)
        return along_axis.any(axis=1) & (first <= slack) & (last >= size - 1 - slack)

    return reaches_both_edges(content.any(axis=1)) | reaches_both_edges(content.any(axis=2))


def test_data_stages_on_real_sample(real_sample, tmp_path):
    repo = copy_repository(tmp_path, {"import": {"source": "dir", "dir": {"path": str(real_sample)}}})
    run(["dvc", "repro", "split"], repo, timeout=600)
    report = json.loads((repo / "metrics/data_report.json").read_text())["labelled"]
    assert report["rows"] == 540 and report["images_ok"] == 540
    assert report["images_missing"] == report["images_unreadable"] == 0
    assert set(report["class_counts"].values()) == {20}
    table = pd.read_csv(repo / "data/interim/labelled.csv", index_col="index", keep_default_na=False)
    assert not table["description"].str.contains(r"<\w+[^>]*>|&#?\w+;", regex=True).any()
    assert (table["description"] == "").mean() > 0.2  # real descriptions are often missing
    images = np.load(repo / "data/interim/labelled_images.npy", mmap_mode="r")
    size = images.shape[1]
    assert images.shape == (540, size, size, 3) and images.dtype == np.uint8
    # After cropping the white border (then padding to a square), the product spans the whole
    # width or the whole height of the frame; after a plain resize it mostly does not.
    names = table["image_name"].iloc[:60]
    plain = np.stack([np.asarray(Image.open(real_sample / "image_train" / n).convert("RGB").resize((size, size)))
                      for n in names])
    cropped_share, plain_share = spans_frame(np.asarray(images[:60])).mean(), spans_frame(plain).mean()
    assert cropped_share > 0.9 and cropped_share > plain_share + 0.2, (cropped_share, plain_share)
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    assert split["split"].value_counts().to_dict() == {"train": 378, "val": 81, "test": 81}
