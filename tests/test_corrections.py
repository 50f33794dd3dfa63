"""Reviewers' corrections: the merge into the labelled rows, the import's folder check, the DAG's track command."""

import io
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline_utils import GIT_IDENTITY, REPO_ROOT
from rakuten_mm.data.corrections import copy_corrections, folder_inside, merge_corrections, read_corrections
from rakuten_mm.data.raw_layout import read_labelled, write_labelled_folder

FILES = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["import"]["files"]


def products(ids, codes, first_row=0) -> pd.DataFrame:
    """Labelled rows in the raw layout: productid i, imageid 10·i, titles naming them."""
    return pd.DataFrame({"designation": [f"produit {i}" for i in ids], "description": ["" for _ in ids],
                         "productid": ids, "imageid": [10 * i for i in ids], "prdtypecode": codes},
                        index=range(first_row, first_row + len(ids)))


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_merge_relabels_present_products_adds_new_ones_and_the_later_folder_wins():
    base = products([1, 2, 3, 4], [10, 10, 40, 40])
    first = products([2, 3, 7], [2583, 40, 1280], first_row=900)   # 2 relabelled, 3 confirmed, 7 new
    second = products([2, 9], [1300, 1160], first_row=900)         # 2 relabelled again (wins), 9 new
    merged, sources, report = merge_corrections(base, [(first, None), (second, None)])
    assert report == {"rows": 5, "products": 4, "relabelled": 1, "confirmed": 1, "added": 2}
    assert merged["prdtypecode"].tolist() == [10, 1300, 40, 40, 1280, 1160]
    assert merged["productid"].tolist() == [1, 2, 3, 4, 7, 9]
    # Added rows: ids after the largest existing one, in productid order (not the folders' own ids).
    assert merged.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert sources.tolist() == [-1, -1, -1, -1, 0, 1]
    assert merged.loc[5, "designation"] == "produit 9"


def test_no_corrections_leave_the_rows_as_they_are():
    base = products([1, 2], [10, 40])
    merged, sources, report = merge_corrections(base, [])
    pd.testing.assert_frame_equal(merged, base)
    assert sources.tolist() == [-1, -1]
    assert report == {"rows": 0, "products": 0, "relabelled": 0, "confirmed": 0, "added": 0}


def test_import_copies_listed_folders_in_order_and_refuses_folders_outside_the_root(tmp_path):
    root = tmp_path / "corrections"
    write_labelled_folder(products([5], [10]), [(50, 5, jpeg())], root / "a", FILES)
    write_labelled_folder(products([6, 7], [40, 50]), [], root / "b", FILES)
    summary = copy_corrections([str(root / "b"), str(root / "a")], root, tmp_path / "raw", FILES)
    assert summary == {"folders": 2, "rows": 3, "folders_with_images": 2}
    copied = read_corrections(tmp_path / "raw", FILES)
    assert [table["productid"].tolist() for table, _ in copied] == [[6, 7], [5]]
    write_labelled_folder(products([8], [10]), [], tmp_path / "elsewhere", FILES)
    with pytest.raises(ValueError, match="not under"):
        folder_inside(tmp_path / "elsewhere", root)
    with pytest.raises(FileNotFoundError):
        folder_inside(root / "missing", root)


def test_track_adds_the_folder_to_dvc_and_to_params_keeping_comments(tmp_path):
    env = {**GIT_IDENTITY, "PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    write_labelled_folder(products([5, 6], [10, 40]), [(50, 5, jpeg())], tmp_path / "corrections" / "review", FILES)
    write_labelled_folder(products([], []), [], tmp_path / "corrections" / "empty", FILES)
    track = [sys.executable, "-m", "rakuten_mm.data.corrections", "track"]
    for _ in range(2):  # tracking twice lists the folder once
        result = subprocess.run([*track, "corrections/review"], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO_ROOT)},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    empty = subprocess.run([*track, "corrections/empty"], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO_ROOT)},
                           capture_output=True, text=True)
    assert empty.returncode == 0 and "nothing tracked" in empty.stdout
    text = (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load(text)["import"]["corrections"] == ["corrections/review"]
    # Everything else is as it was, comments included.
    assert text.replace("corrections:\n  - corrections/review", "corrections: []") == \
        (REPO_ROOT / "params.yaml").read_text()
    assert (tmp_path / "corrections" / "review.dvc").is_file()
    assert read_labelled(tmp_path / "corrections/review" / FILES["x_train"],
                         tmp_path / "corrections/review" / FILES["y_train"])["productid"].tolist() == [5, 6]
