import pandas as pd
import pytest

from rakuten_mm.data.raw_layout import RawLayoutError, image_filename, read_features, read_labelled


def write_x(path, columns=("designation", "description", "productid", "imageid")):
    frame = pd.DataFrame({"designation": ["Chaise"], "description": [None], "productid": [11], "imageid": [22]})
    frame[list(columns)].to_csv(path)


def test_image_filename_follows_the_challenge_layout():
    assert image_filename(1263597046, 3804725264) == "image_1263597046_product_3804725264.jpg"


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "X_train_update.csv"
    write_x(path, columns=("designation", "description", "productid"))
    with pytest.raises(RawLayoutError, match=r"X_train_update.csv: missing required column 'imageid'"):
        read_features(path)


def test_labels_are_joined_on_the_unnamed_index(tmp_path):
    write_x(tmp_path / "x.csv")
    pd.DataFrame({"prdtypecode": [1560]}).to_csv(tmp_path / "y.csv")
    table = read_labelled(tmp_path / "x.csv", tmp_path / "y.csv")
    assert table.loc[0, "prdtypecode"] == 1560 and table.loc[0, "imageid"] == 22


def test_rows_without_label_are_an_error(tmp_path):
    write_x(tmp_path / "x.csv")
    pd.DataFrame({"prdtypecode": [1560]}, index=[5]).to_csv(tmp_path / "y.csv")
    with pytest.raises(RawLayoutError, match="no prdtypecode for 1 rows"):
        read_labelled(tmp_path / "x.csv", tmp_path / "y.csv")


def test_a_header_only_test_file_reads_as_an_empty_table(tmp_path):
    pd.DataFrame(columns=["designation", "description", "productid", "imageid"]).to_csv(tmp_path / "x.csv")
    table = read_features(tmp_path / "x.csv")
    assert table.empty and table["imageid"].dtype == "int64"


def test_non_integer_ids_are_an_error(tmp_path):
    pd.DataFrame({"designation": ["a"], "description": [""], "productid": ["p1"], "imageid": [3]}).to_csv(
        tmp_path / "x.csv")
    with pytest.raises(RawLayoutError, match="column 'productid' must hold integer ids"):
        read_features(tmp_path / "x.csv")
