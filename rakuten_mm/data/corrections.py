"""Reviewers' corrections as training data: folders in the challenge layout merged into the labelled rows.

A corrections folder (exported from the review queue: `python -m rakuten_mm.serving.review export`)
holds X_train, Y_train and an images zip, named as `import.files` names them. `import` copies each
folder that `import.corrections` lists into data/raw/corrections/<n>/ (n: its position in the list);
`make_dataset` merges them into the labelled rows: a product already there (same productid) takes
the reviewer's label, a new product is added with its photo. When several folders hold the same
product, the later folder in the list wins.

    python -m rakuten_mm.data.corrections track DIR [--params params.yaml]

`dvc add`s a folder and lists it in `import.corrections` (the retraining DAG's "track" step).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.data.raw_layout import LABEL_COLUMN, RawLayoutError, read_labelled

# data/raw/<this>/<n>/: the copies of the corrections folders, in params order.
RAW_CORRECTIONS = "corrections"
CORRECTED_FILES = ("x_train", "y_train", "images_train")


def folder_inside(path: str | Path, root: str | Path | None) -> Path:
    """The folder, checked to be under the corrections root (the folder DVC watches for import)."""
    if root is None:
        raise ValueError(f"import.corrections lists {path} but the import has no --corrections root folder")
    folder, root = Path(path).resolve(), Path(root).resolve()
    if not folder.is_relative_to(root):
        raise ValueError(f"import.corrections: {path} is not under {root}; DVC reruns import only when a folder "
                         f"there changes: move it there (and `dvc add` it)")
    if not folder.is_dir():
        raise FileNotFoundError(f"import.corrections: {path} is not a folder")
    return folder


def copy_corrections(paths: list[str], root: str | Path | None, out: Path, files: dict) -> dict:
    """Copy each listed corrections folder into out/<n>/ after checking its tables read; return the counts."""
    rows = images = 0
    for number, path in enumerate(paths):
        folder, target = folder_inside(path, root), out / str(number)
        table = read_labelled(folder / files["x_train"], folder / files["y_train"])
        target.mkdir(parents=True)
        for key in CORRECTED_FILES:
            if (folder / files[key]).is_file():  # a folder of products without photos has no zip
                shutil.copy2(folder / files[key], target / files[key])
        rows += len(table)
        images += int((folder / files["images_train"]).is_file())
    return {"folders": len(paths), "rows": rows, "folders_with_images": images}


def read_corrections(raw_corrections: Path, files: dict) -> list[tuple[pd.DataFrame, Path]]:
    """Each copied corrections folder's labelled table and images zip, in params order (none: empty list)."""
    if not raw_corrections.is_dir():
        return []
    folders = sorted((p for p in raw_corrections.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    return [(read_labelled(f / files["x_train"], f / files["y_train"]), f / files["images_train"]) for f in folders]


def latest_corrections(corrections: list[tuple[pd.DataFrame, Path]]) -> pd.DataFrame:
    """One row per corrected product (the last folder's wins), with the folder it came from (`source`)."""
    merged = pd.concat([table.assign(source=number) for number, (table, _) in enumerate(corrections)])
    return merged.drop_duplicates("productid", keep="last").sort_values("productid", kind="stable")


def merge_corrections(labelled: pd.DataFrame,
                      corrections: list[tuple[pd.DataFrame, Path]]) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The labelled rows with the reviewers' labels applied and new products appended.

    Returns the merged table, each row's source (-1: the imported data, n: corrections folder n)
    and the counts for the data report. Added rows get row ids after the largest existing one, in
    productid order, so that the same corrections give the same ids.
    """
    if not corrections:
        report = {"rows": 0, "products": 0, "relabelled": 0, "confirmed": 0, "added": 0}
        return labelled.copy(), np.full(len(labelled), -1), report
    latest = latest_corrections(corrections)
    present = latest["productid"].isin(labelled["productid"])
    reviewed = latest[present].set_index("productid")[LABEL_COLUMN]
    merged = labelled.copy()
    matches = merged["productid"].isin(reviewed.index)
    before = merged.loc[matches, LABEL_COLUMN].copy()
    merged.loc[matches, LABEL_COLUMN] = merged.loc[matches, "productid"].map(reviewed).astype("int64")
    added = latest[~present].drop(columns="source")
    start = int(labelled.index.max()) + 1 if len(labelled) else 0
    added.index = pd.RangeIndex(start, start + len(added))
    sources = np.concatenate([np.full(len(merged), -1), latest.loc[~present, "source"].to_numpy(dtype=int)])
    merged = pd.concat([merged, added[merged.columns]])
    report = {"rows": int(sum(len(table) for table, _ in corrections)), "products": int(len(latest)),
              "relabelled": int((before != merged.loc[before.index, LABEL_COLUMN]).sum()),
              "confirmed": int((before == merged.loc[before.index, LABEL_COLUMN]).sum()),
              "added": int(len(added))}
    return merged, sources, report


def track_folder(folder: Path, params_path: Path) -> bool:
    """`dvc add` a corrections folder and list it in params.yaml `import.corrections`; False when it is empty."""
    from ruamel.yaml import YAML  # DVC's own YAML library: a round trip keeps params.yaml's comments

    files = YAML(typ="safe").load(params_path.read_text())["import"]["files"]
    if read_labelled(folder / files["x_train"], folder / files["y_train"]).empty:
        return False
    subprocess.run([sys.executable, "-m", "dvc", "add", str(folder)], check=True)
    yaml = YAML()
    yaml.preserve_quotes = True
    # ruamel writes None as an empty value; params.yaml spells it null.
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    params = yaml.load(params_path.read_text())
    listed = params["import"].setdefault("corrections", [])
    entry = str(folder)
    if entry not in listed:
        listed.append(entry)
    with params_path.open("w") as handle:
        yaml.dump(params, handle)
    return True


def main(argv: list[str] | None = None) -> int:
    """CLI: `track DIR` (dvc add, then list in import.corrections)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("track",))
    parser.add_argument("folder", type=Path, help="a corrections folder under the corrections root")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    try:
        tracked = track_folder(args.folder, args.params)
    except RawLayoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"tracked {args.folder} in import.corrections" if tracked else f"{args.folder} has no rows: nothing tracked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
