"""Which models a folder holds: a short version id, from dvc.lock's md5s or from the model files themselves."""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODEL_STAGES = ("tfidf", "train_text", "train_image", "train_baseline", "train_fusion")
MODEL_PARTS = ("tfidf", "text", "image", "baseline", "fusion")
MODEL_FILES = ("tfidf/featurizer.skops", "tfidf/preprocessing.json",
               "text/model.keras", "text/preprocessing.json", "text/classes.json",
               "image/model.keras", "image/preprocessing.json", "image/classes.json",
               "baseline/model.skops", "baseline/preprocessing.json", "baseline/classes.json",
               "fusion/fusion.json")
# Loaded when present: folders written before it keep the featurizer's terms inside its .skops file.
OPTIONAL_MODEL_FILES = ("tfidf/featurizer.vocabulary.json",)
# `dvc repro` writes the models to <repo>/models and their md5s to <repo>/dvc.lock.
DVC_MODELS_FOLDER = "models"
HASH_CHUNK_BYTES = 1 << 20


class ModelsNotFoundError(FileNotFoundError):
    """The models folder lacks a file the API needs."""


@dataclass(frozen=True)
class ModelsVersion:
    """A models folder's version id, the md5 of each of its parts, and where those md5s come from."""

    version: str
    outs: dict[str, str] = field(default_factory=dict)
    source: str = "dvc.lock"  # or "files": no dvc.lock describes the folder, its files were hashed


def read_model_outs(dvc_lock: Path) -> dict[str, str]:
    """md5 of each models/ out of the training stages in dvc.lock (empty without a lock)."""
    if not dvc_lock.is_file():
        return {}
    stages = (yaml.safe_load(dvc_lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for stage in MODEL_STAGES
        for out in stages.get(stage, {}).get("outs", [])
        if out["path"].startswith("models/") and "md5" in out
    }


def model_version(outs: dict[str, str]) -> str:
    """A short id of the served models: md5 over the sorted out hashes, or "unknown"."""
    if not outs:
        return "unknown"
    joined = "\n".join(f"{path} {md5}" for path, md5 in sorted(outs.items()))
    return hashlib.md5(joined.encode()).hexdigest()[:12]


def check_models_dir(models_dir: Path) -> None:
    """Fail with a clear message when a model file is missing."""
    missing = [name for name in MODEL_FILES if not (models_dir / name).is_file()]
    if missing:
        raise ModelsNotFoundError(
            f"{models_dir.resolve()} lacks {', '.join(missing)}: run `make run` (dvc repro) first, "
            "or point RAKUTEN_API_MODELS_DIR (or the rollout file) at a models folder")


def same_folder(first: Path, second: Path) -> bool:
    """Whether two paths name the same folder, however they are spelled."""
    return first.resolve() == second.resolve()


def lock_describing(models_dir: Path, default_dir: Path, default_lock: Path) -> Path | None:
    """The dvc.lock whose outs describe models_dir, if any.

    The configured lock describes the configured folder; any other folder is described by a
    dvc.lock beside it only when it is a `models` folder, as `dvc repro` or `dvc checkout` leave it.
    """
    if same_folder(models_dir, default_dir):
        return default_lock
    beside = models_dir.parent / "dvc.lock"
    return beside if models_dir.name == DVC_MODELS_FOLDER and beside.is_file() else None


def present_model_files(models_dir: Path) -> list[str]:
    """The model files the API loads from this folder: the required ones and the optional ones it holds."""
    return [*MODEL_FILES, *(name for name in OPTIONAL_MODEL_FILES if (models_dir / name).is_file())]


def files_outs(models_dir: Path) -> dict[str, str]:
    """md5 of each part (text, image, baseline, fusion) over the bytes of its model files, keyed like dvc.lock's outs."""
    outs, names = {}, present_model_files(models_dir)
    for part in MODEL_PARTS:
        digest = hashlib.md5()
        for name in (n for n in names if n.startswith(f"{part}/")):
            digest.update(f"{name}\0".encode())
            with (models_dir / name).open("rb") as handle:
                while chunk := handle.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
        outs[f"{DVC_MODELS_FOLDER}/{part}"] = digest.hexdigest()
    return outs


def identify_models(models_dir: Path, default_dir: Path, default_lock: Path) -> ModelsVersion:
    """The version of a models folder: from the dvc.lock that describes it, else from its files."""
    lock = lock_describing(models_dir, default_dir, default_lock)
    outs = read_model_outs(lock) if lock is not None else {}
    if outs:
        return ModelsVersion(model_version(outs), outs, "dvc.lock")
    # A copied or hand-made folder: hash what the API loads, so that different models never share an id.
    outs = files_outs(models_dir)
    return ModelsVersion(model_version(outs), outs, "files")


def models_fingerprint(models_dir: Path) -> tuple:
    """Size and modification time of every model file: changes when a file is rewritten in place."""
    stats = [(models_dir / name).stat() for name in present_model_files(models_dir)]
    return tuple((s.st_size, s.st_mtime_ns, s.st_ino) for s in stats)
