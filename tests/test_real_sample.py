"""The data stages on the 540 real products beside the repository (skipped where absent)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline_utils import copy_repository, run

pytestmark = pytest.mark.slow


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
    # Cropping the white border makes products fill more of the frame than a plain resize does.
    names = table["image_name"].iloc[:60]
    plain = np.stack([np.asarray(Image.open(real_sample / "image_train" / n).convert("RGB").resize((size, size)))
                      for n in names])
    white_share = lambda batch: (np.asarray(batch) >= 240).all(axis=-1).mean()
    assert white_share(images[:60]) < 0.8 * white_share(plain)
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    assert split["split"].value_counts().to_dict() == {"train": 378, "val": 81, "test": 81}
