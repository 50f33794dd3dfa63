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


@pytest.mark.parametrize("chunk", [1 << 20, 7, 2])
def test_a_csv_that_is_not_utf8_names_the_file_byte_offset_and_line(tmp_path, monkeypatch, chunk):
    # Small chunks put the bad byte, and a valid two-byte character before it, across chunk boundaries.
    monkeypatch.setattr("rakuten_mm.data.raw_layout.ENCODING_CHECK_CHUNK", chunk)
    path = tmp_path / "X_train_update.csv"
    write_x(path)
    good = path.read_bytes() + "1,Thé vert,,12,23\n".encode("utf-8")
    # A Latin-1 "é" on the fourth line (a file saved by a spreadsheet in the wrong encoding).
    path.write_bytes(good + "2,Caf\xe9 noir,,13,24\n".encode("latin-1"))
    offset = len(good) + len("2,Caf")
    with pytest.raises(RawLayoutError) as caught:
        read_features(path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{path}: not UTF-8" in message and f"byte {offset}" in message and "line 4" in message


def test_a_csv_that_pandas_cannot_parse_is_a_layout_error(tmp_path):
    path = tmp_path / "X_train_update.csv"
    path.write_text(',designation,description,productid,imageid\n0,"unterminated,,1,2\n')
    with pytest.raises(RawLayoutError, match="X_train_update.csv: not a readable CSV"):
        read_features(path)


@pytest.mark.parametrize("which", ["x", "y"])
def test_duplicate_row_ids_are_an_error_naming_them(tmp_path, which):
    x = pd.DataFrame({"designation": ["a", "b", "c"], "description": [None] * 3, "productid": [1, 2, 3],
                      "imageid": [4, 5, 6]}, index=[7, 8, 9])
    y = pd.DataFrame({"prdtypecode": [10, 40, 50]}, index=[7, 8, 9])
    # Today a repeated id multiplies rows on the join, each copy with its own label.
    if which == "x":
        x.index = [7, 9, 9]
    else:
        y.index = [7, 8, 8]
    x.to_csv(tmp_path / "x.csv")
    y.to_csv(tmp_path / "y.csv")
    with pytest.raises(RawLayoutError, match=rf"{which}.csv: duplicate row ids \[{9 if which == 'x' else 8}\]"):
        read_labelled(tmp_path / "x.csv", tmp_path / "y.csv")


def test_a_csv_without_the_unnamed_index_column_says_so(tmp_path):
    pd.DataFrame({"designation": ["a"], "description": [""], "productid": [1], "imageid": [2]}).to_csv(
        tmp_path / "x.csv", index=False)
    with pytest.raises(RawLayoutError, match=r"x.csv: no unnamed index column.*'designation'"):
        read_features(tmp_path / "x.csv")
    pd.DataFrame({"prdtypecode": [10]}).to_csv(tmp_path / "y.csv", index=False)
    write_x(tmp_path / "x2.csv")
    with pytest.raises(RawLayoutError, match=r"y.csv: no unnamed index column.*'prdtypecode'"):
        read_labelled(tmp_path / "x2.csv", tmp_path / "y.csv")
