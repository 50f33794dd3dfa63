"""A stage that fails says which input and why, in one line, and exits non-zero."""

import subprocess
import sys

import pandas as pd

from pipeline_utils import REPO_ROOT


def run_stage(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def test_make_dataset_names_the_file_and_the_missing_column(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame({"designation": ["x"], "description": [""], "productid": [1]}).to_csv(raw / "X_train_update.csv")
    pd.DataFrame({"prdtypecode": [10]}).to_csv(raw / "Y_train_CVw08PX.csv")
    result = run_stage("stages.make_dataset", "--raw", str(raw), "--out", str(tmp_path / "out"),
                       "--report", str(tmp_path / "report.json"))
    assert result.returncode == 1
    assert "X_train_update.csv: missing required column 'imageid'" in result.stderr


def test_import_from_a_missing_folder_says_so(tmp_path):
    params = (REPO_ROOT / "params.yaml").read_text().replace("source: sample", "source: dir")
    params = params.replace("path: ../shared/rakuten-real-sample", f"path: {tmp_path / 'absent'}")
    (tmp_path / "params.yaml").write_text(params)
    result = run_stage("stages.import_data", "--out", str(tmp_path / "raw"), "--params", str(tmp_path / "params.yaml"))
    assert result.returncode == 1
    assert f"import.dir.path: {tmp_path / 'absent'} is not a folder" in result.stderr


def test_make_dataset_on_a_csv_that_is_not_utf8_says_where_in_one_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    header = ",designation,description,productid,imageid\n"
    (raw / "X_train_update.csv").write_bytes((header + "0,Caf\xe9,,1,2\n").encode("latin-1"))
    pd.DataFrame({"prdtypecode": [10]}).to_csv(raw / "Y_train_CVw08PX.csv")
    result = run_stage("stages.make_dataset", "--raw", str(raw), "--out", str(tmp_path / "out"),
                       "--report", str(tmp_path / "report.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert errors == [errors[0]] and errors[0].endswith(
        f"{raw / 'X_train_update.csv'}: not UTF-8 at byte {len(header) + 5} (line 2: byte 0xe9); save the file as UTF-8")
