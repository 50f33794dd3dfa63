"""JSON files the stages write and read (sorted keys, UTF-8, a trailing newline); small state files replaced
atomically; files others write, read defensively and only again once they changed."""

import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


def write_json(data: dict, path: str | Path) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> dict:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


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


def file_fingerprint(path: Path) -> tuple | None:
    """What changes whenever the file is rewritten or touched: (mtime, size, inode); None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


@functools.lru_cache(maxsize=64)
def parsed_file(path: Path, stamp: tuple, parse: Callable[[str], object]) -> object:
    """A file's parsed content; cached per stamp, so it is read again only once it changed."""
    return parse(path.read_text(encoding="utf-8"))


def read_file(path: Path, parse: Callable[[str], object] = json.loads) -> object | None:
    """A JSON (or, with parse, other) file's content, None when absent or unreadable (logged); read once per change."""
    stamp = file_fingerprint(path)
    if stamp is None:
        return None
    try:
        return parsed_file(path, stamp, parse)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, yaml.YAMLError) as error:
        # Caught mid-write or broken: the caller shows nothing rather than failing.
        log.warning("cannot read %s: %s", path, error)
        return None
