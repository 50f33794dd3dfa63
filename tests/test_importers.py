import io
import json
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
from PIL import Image

from rakuten_mm.data.archive import write_stored_zip
from rakuten_mm.data.importers import HubUnreachableError, download_from_hub, import_from_dir
from rakuten_mm.data.raw_layout import image_filename, read_labelled, write_labelled_folder
from pipeline_utils import REPO_ROOT

FILES = {"x_train": "X_train_update.csv", "y_train": "Y_train_CVw08PX.csv", "x_test": "X_test_update.csv",
         "images_train": "images_train.zip", "images_test": "images_test.zip"}


def jpeg_bytes(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def challenge_folder(root, images_as_zip: bool):
    """Three labelled rows (one without a photo) and one unlabelled row, in the challenge layout."""
    x = pd.DataFrame({"designation": ["A", "B", "C"], "description": ["d", None, "e"],
                      "productid": [1, 2, 3], "imageid": [11, 12, 13]})
    x.to_csv(root / FILES["x_train"])
    pd.DataFrame({"prdtypecode": [10, 40, 50]}).to_csv(root / FILES["y_train"])
    pd.DataFrame({"designation": ["T"], "description": [None], "productid": [4], "imageid": [14]},
                 index=[3]).to_csv(root / FILES["x_test"])
    photos = {("image_train", image_filename(11, 1)): "red", ("image_train", image_filename(13, 3)): "blue",
              ("image_test", image_filename(14, 4)): "green"}
    if images_as_zip:
        # The hub's archive nests folders; members are matched by file name.
        write_stored_zip(root / "images.zip", [(f"images/{d}/{n}", jpeg_bytes(c)) for (d, n), c in photos.items()])
    else:
        for (folder, name), color in photos.items():
            (root / folder).mkdir(exist_ok=True)
            (root / folder / name).write_bytes(jpeg_bytes(color))
    return root


@pytest.mark.parametrize("images_as_zip", [False, True])
def test_dir_import_packs_one_archive_per_split_in_row_order(tmp_path, images_as_zip):
    (tmp_path / "src").mkdir()
    source = challenge_folder(tmp_path / "src", images_as_zip)
    summary = import_from_dir(source, tmp_path / "raw", FILES)
    assert summary == {"labelled": 3, "unlabelled": 1, "images_train": 2, "images_test": 1, "images_unmatched": 0}
    with zipfile.ZipFile(tmp_path / "raw" / FILES["images_train"]) as archive:
        assert archive.namelist() == [image_filename(11, 1), image_filename(13, 3)]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    assert (tmp_path / "raw" / FILES["y_train"]).read_bytes() == (source / FILES["y_train"]).read_bytes()


def test_a_written_labelled_folder_imports_with_its_labels_and_photos(tmp_path):
    table = pd.DataFrame({"designation": ["Lampe", "Vélo"], "description": ["<b>LED</b>", None],
                          "productid": [7, 8], "imageid": [70, 80], "prdtypecode": [2060, 1280]}, index=[900, 901])
    photo = jpeg_bytes("red")
    written = write_labelled_folder(table, [(70, 7, photo)], tmp_path / "corrections", FILES)
    summary = import_from_dir(tmp_path / "corrections", tmp_path / "raw", FILES)
    assert written == {"labelled": 2, "images_train": 1}
    assert summary == {"labelled": 2, "unlabelled": 0, "images_train": 1, "images_test": 0, "images_unmatched": 0}
    imported = read_labelled(tmp_path / "raw" / FILES["x_train"], tmp_path / "raw" / FILES["y_train"])
    assert imported.index.tolist() == [900, 901]
    assert imported["prdtypecode"].tolist() == [2060, 1280]
    assert imported.loc[901, "designation"] == "Vélo" and pd.isna(imported.loc[901, "description"])
    with zipfile.ZipFile(tmp_path / "raw" / FILES["images_train"]) as archive:
        assert archive.read(image_filename(70, 7)) == photo


def test_dir_import_of_a_missing_folder_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        import_from_dir(tmp_path / "nowhere", tmp_path / "raw", FILES)


def test_hub_offline_fails_fast_with_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # The client read the environment when first imported; set its constants too.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    hub = {"repo_id": "ndiguesene/ml-datasets-image-rakuten-ecommerce", "revision": "main", "timeout_s": 5,
           "files": {"x_train": "X_train_update.csv"}}
    with pytest.raises(HubUnreachableError, match="import.source=dir"):
        download_from_hub(hub, tmp_path / "links")


def test_unreachable_hub_fails_in_seconds(tmp_path, monkeypatch):
    # A closed port on loopback stands in for an offline machine; nothing leaves this host.
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    hub = {"repo_id": "ndiguesene/ml-datasets-image-rakuten-ecommerce", "revision": "main", "timeout_s": 5,
           "files": {"x_train": "X_train_update.csv"}}
    with pytest.raises(HubUnreachableError, match="unreachable at http://127.0.0.1:9"):
        download_from_hub(hub, tmp_path / "links")


def test_image_extensions_match_whatever_their_case(tmp_path):
    (tmp_path / "src").mkdir()
    source = challenge_folder(tmp_path / "src", images_as_zip=False)
    # Cameras and Windows tools write .JPG and .jpeg; the row still has its photo.
    red = source / "image_train" / image_filename(11, 1)
    red.rename(red.with_suffix(".JPG"))
    (source / "image_train" / image_filename(12, 2).replace(".jpg", ".jpeg")).write_bytes(jpeg_bytes("white"))
    test_photo = f"images/image_test/{image_filename(14, 4)[:-4]}.JPEG"
    write_stored_zip(source / "more.zip", [(test_photo, jpeg_bytes("gray"))])
    (source / "image_test" / image_filename(14, 4)).unlink()
    summary = import_from_dir(source, tmp_path / "raw", FILES)
    assert summary["images_train"] == 3 and summary["images_test"] == 1 and summary["images_unmatched"] == 0
    with zipfile.ZipFile(tmp_path / "raw" / FILES["images_train"]) as archive:
        assert archive.namelist() == [image_filename(i, p) for i, p in ((11, 1), (12, 2), (13, 3))]
        assert archive.read(image_filename(12, 2)) == jpeg_bytes("white")
    with zipfile.ZipFile(tmp_path / "raw" / FILES["images_test"]) as archive:
        assert archive.read(image_filename(14, 4)) == jpeg_bytes("gray")


def run_stage(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def test_images_that_match_no_row_are_counted_in_the_data_report(tmp_path):
    (tmp_path / "src").mkdir()
    source = challenge_folder(tmp_path / "src", images_as_zip=False)
    # Two photos whose ids are in no table (a product dropped from the CSV, a typo in an id).
    (source / "image_train" / image_filename(99, 9)).write_bytes(jpeg_bytes("black"))
    write_stored_zip(source / "extra.zip", [(f"image_test/{image_filename(98, 8)}", jpeg_bytes("black"))])
    params = (REPO_ROOT / "params.yaml").read_text().replace("source: sample", "source: dir")
    params = params.replace("path: ../shared/rakuten-real-sample", f"path: {source}")
    (tmp_path / "params.yaml").write_text(params)
    raw, report = tmp_path / "raw", tmp_path / "data_report.json"
    imported = run_stage("stages.import_data", "--out", str(raw), "--params", str(tmp_path / "params.yaml"))
    assert imported.returncode == 0, imported.stderr
    assert "2 images in the source match no row" in imported.stderr
    made = run_stage("stages.make_dataset", "--raw", str(raw), "--out", str(tmp_path / "interim"),
                     "--report", str(report), "--params", str(tmp_path / "params.yaml"))
    assert made.returncode == 0, made.stderr
    reports = json.loads(report.read_text())
    assert reports["import"]["images_unmatched"] == 2
    assert reports["labelled"]["images_ok"] == 2 and reports["labelled"]["images_missing"] == 1
