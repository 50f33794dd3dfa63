"""Atomic file replacement for the small state files the API and its commands share."""

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace the file by a new one (a new inode) atomically: readers see the old or the new text, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
