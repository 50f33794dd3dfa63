"""The class-index → prdtypecode mapping saved beside every model and checked when it is loaded."""

from pathlib import Path

from rakuten_mm.categories import CODES
from rakuten_mm.jsonfiles import read_json, write_json

CLASSES_FILE = "classes.json"


class ClassMappingError(ValueError):
    """A saved model's classes are not the package's: its outputs would be relabelled silently."""


def write_classes(model_dir: str | Path) -> None:
    """Save the product type code of each output index of the model in model_dir."""
    write_json({"prdtypecode": list(CODES)}, Path(model_dir) / CLASSES_FILE)


def check_classes(saved: list[int] | None, source: str) -> None:
    """Raise ClassMappingError unless saved lists the package's codes in the package's order."""
    if saved is None:
        raise ClassMappingError(f"{source}: no class mapping saved (retrain with `dvc repro`)")
    if [int(code) for code in saved] != list(CODES):
        raise ClassMappingError(
            f"{source}: the model was trained for classes {list(saved)[:5]}… ({len(saved)} codes) but this code "
            f"knows {list(CODES)[:5]}… ({len(CODES)} codes); retrain it or use the matching code version")


def check_model_classes(model_dir: str | Path) -> None:
    """Check the classes.json saved beside a model (ClassMappingError when missing or different)."""
    path = Path(model_dir) / CLASSES_FILE
    saved = read_json(path)["prdtypecode"] if path.is_file() else None
    check_classes(saved, str(path))
