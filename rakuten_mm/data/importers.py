"""Bring raw data into data/raw/: from a local folder in the challenge layout or from the hub."""

import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from rakuten_mm.data.archive import canonical_image_name, index_members_by_basename, read_member, write_stored_zip
from rakuten_mm.data.raw_layout import FEATURE_COLUMNS, image_filename, read_features, read_labelled

log = logging.getLogger(__name__)

# Where the challenge layout keeps each split's photos when they are loose files.
IMAGE_FOLDERS = {"images_train": "image_train", "images_test": "image_test"}


class HubUnreachableError(RuntimeError):
    """The Hugging Face hub could not be reached (offline machine, proxy, bad token)."""


class HubContentError(ValueError):
    """The hub answered, but the dataset repo, revision or file that params name is not there."""


class ImageLookup:
    """Find challenge images by file name (any case of .jpg/.jpeg) in loose folders and zip archives under one root."""

    def __init__(self, root: Path, stack: ExitStack):
        self.files: dict[str, Path] = {}
        for folder in IMAGE_FOLDERS.values():
            if (root / folder).is_dir():
                for path in sorted((root / folder).iterdir()):
                    name = canonical_image_name(path.name)
                    if name is not None and path.is_file():
                        self.files.setdefault(name, path)
        self.archives = []
        for path in sorted(root.rglob("*.zip")):
            archive = stack.enter_context(zipfile.ZipFile(path))
            self.archives.append((archive, index_members_by_basename(archive)))
        self.found: set[str] = set()

    def read(self, name: str) -> bytes | None:
        """Return the image's bytes, or None when no folder or archive holds it."""
        if name in self.files:
            self.found.add(name)
            return self.files[name].read_bytes()
        for archive, members in self.archives:
            if name in members:
                self.found.add(name)
                return read_member(archive, members[name])
        return None

    def unmatched(self) -> int:
        """How many distinct images in the source no read() asked for (photos of no row)."""
        available = set(self.files).union(*(members for _, members in self.archives))
        return len(available - self.found)


def iter_found_images(table: pd.DataFrame, lookup: ImageLookup, desc: str) -> Iterator[tuple[str, bytes]]:
    """Yield (name, bytes) for the table's rows whose image exists, in row order."""
    missing = 0
    names = [image_filename(i, p) for i, p in zip(table["imageid"], table["productid"], strict=True)]
    for name in tqdm(names, desc=desc, unit="img"):
        data = lookup.read(name)
        if data is None:
            missing += 1
            continue
        yield name, data
    if missing:
        log.warning("%s: %d of %d images not found in the source", desc, missing, len(names))


def import_from_dir(source: str | Path, out_dir: str | Path, files: dict) -> dict:
    """Copy the CSVs of a challenge-layout folder and pack its images into one zip per split."""
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"import.dir.path: {source} is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    labelled = read_labelled(source / files["x_train"], source / files["y_train"])
    test_path = source / files["x_test"]
    unlabelled = read_features(test_path) if test_path.is_file() else pd.DataFrame(columns=FEATURE_COLUMNS)
    for key in ("x_train", "y_train"):
        shutil.copyfile(source / files[key], out_dir / files[key])
    unlabelled.to_csv(out_dir / files["x_test"])
    counts = {}
    with ExitStack() as stack:
        lookup = ImageLookup(source, stack)
        for key, table in (("images_train", labelled), ("images_test", unlabelled)):
            images = iter_found_images(table, lookup, desc=key)
            counts[key] = write_stored_zip(out_dir / files[key], images)
        counts["images_unmatched"] = lookup.unmatched()
    if counts["images_unmatched"]:
        log.warning("%d images in the source match no row of %s or %s (not imported)",
                    counts["images_unmatched"], files["x_train"], files["x_test"])
    log.info("imported %d labelled and %d unlabelled rows from %s", len(labelled), len(unlabelled), source)
    return {"labelled": len(labelled), "unlabelled": len(unlabelled), **counts}


def check_hub_reachable(endpoint: str, timeout_s: float) -> None:
    """One HTTP HEAD to the hub, so that an offline machine or a hub that never answers fails in seconds.

    Any HTTP answer counts as reachable. Through the environment's proxies, as the hub client goes; the
    client itself would retry a silent hub for minutes (60 s per attempt) whatever import.hub.timeout_s says.
    """
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as error:  # refused, DNS, TLS, proxy, or no answer within timeout_s
        reason = getattr(error, "reason", error)
        raise HubUnreachableError(
            f"Hugging Face hub unreachable at {endpoint} ({reason}; timeout {timeout_s} s). Download the files "
            "yourself and run with `dvc exp run -S import.source=dir -S import.dir.path=<folder>`, or set "
            "HF_HUB_OFFLINE=1 if they are already in the HF cache."
        ) from error


def hub_content_error(error: Exception, hub: dict, repo_path: str, endpoint: str) -> HubContentError | None:
    """A message naming the param to fix when the hub said the repo, revision or file does not exist."""
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id, revision = hub["repo_id"], hub["revision"]
    if isinstance(error, RevisionNotFoundError):
        return HubContentError(
            f"import.hub.revision: revision '{revision}' not found in dataset {repo_id} at {endpoint}; "
            "set import.hub.revision to a branch, tag or commit of that repository")
    if isinstance(error, RemoteEntryNotFoundError):
        return HubContentError(
            f"import.hub.files: '{repo_path}' not found in dataset {repo_id} at revision '{revision}' ({endpoint})")
    if isinstance(error, RepositoryNotFoundError):  # also a gated or private repo without a valid HF_TOKEN
        return HubContentError(
            f"import.hub.repo_id: dataset {repo_id} not found at {endpoint}, or private/gated (set HF_TOKEN)")
    return None


def download_from_hub(hub: dict, link_dir: str | Path) -> Path:
    """Download the challenge files from a Hugging Face dataset repo into the HF cache.

    Returns link_dir holding a symlink per file, named as the dir layout expects.
    """
    # Imported here so that the sample and dir sources work without the hub client.
    from huggingface_hub import constants, hf_hub_download

    if not constants.HF_HUB_OFFLINE:
        check_hub_reachable(constants.ENDPOINT, hub["timeout_s"])
    link_dir = Path(link_dir)
    link_dir.mkdir(parents=True, exist_ok=True)
    for repo_path in hub["files"].values():
        try:
            local = hf_hub_download(
                repo_id=hub["repo_id"], filename=repo_path, repo_type="dataset",
                revision=hub["revision"], token=os.environ.get("HF_TOKEN"), etag_timeout=hub["timeout_s"],
            )
        except Exception as error:  # the hub client raises many kinds; all but "not there" mean "not reachable"
            content_error = hub_content_error(error, hub, repo_path, constants.ENDPOINT)
            if content_error is not None:
                raise content_error from error
            first_line = str(error).splitlines()[0] if str(error) else ""
            raise HubUnreachableError(
                f"Hugging Face hub unreachable for {hub['repo_id']}/{repo_path} "
                f"({type(error).__name__}: {first_line}). Download the files yourself and run with "
                "`dvc exp run -S import.source=dir -S import.dir.path=<folder>`."
            ) from error
        link = link_dir / Path(repo_path).name
        link.unlink(missing_ok=True)
        link.symlink_to(Path(local).resolve())
    return link_dir
