"""Stage `image_features`: pooled features of a frozen pretrained backbone, computed once per image.

Heads trained on them (train_image.input=features) can then be swept without decoding or
running the backbone again: DVC reuses this stage's outputs while image_features params hold.
With train_image.input=pixels nothing reads them: the stage writes empty (rows × 0) arrays and
runs no backbone.
"""

import logging
import sys
from pathlib import Path

import numpy as np

from rakuten_mm.data.dataset import load_images
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.params import uses_image_features
from rakuten_mm.stage import start_stage

log = logging.getLogger("image_features")
TABLES = ("labelled", "unlabelled")


def extract_features(p: dict, size: int, dataset: Path, out: Path, model_dir: Path) -> None:
    """Run the frozen backbone over every labelled and unlabelled image; save it and the features."""
    # Imported here: a pipeline whose image model trains on pixels skips TensorFlow's import too.
    from rakuten_mm.models.determinism import set_determinism  # noqa: PLC0415
    from rakuten_mm.models.image import PretrainedWeightsUnavailableError, build_feature_extractor  # noqa: PLC0415
    from rakuten_mm.models.keras_files import save_keras_model  # noqa: PLC0415
    from rakuten_mm.models.training import write_features  # noqa: PLC0415

    set_determinism(p["seed"])
    try:
        extractor = build_feature_extractor(p, size)
    except PretrainedWeightsUnavailableError as error:
        log.error("%s", error)
        sys.exit(1)
    for table in TABLES:
        features = write_features(extractor, load_images(dataset / f"{table}_images.npy"), p["batch_size"],
                                  out / f"{table}.npy")
        log.info("%s: features %s", table, features.shape)
    save_keras_model(extractor, model_dir / "extractor.keras")


def main() -> None:
    """Features of every image when the image head reads them, empty arrays otherwise."""
    params, args = start_stage("image_features", ["dataset", "features", "model"], "Frozen image features.")
    p, size = params["image_features"], params["image"]["size"]
    dataset, out, model_dir = Path(args.dataset), Path(args.features), Path(args.model)
    out.mkdir(parents=True, exist_ok=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    if not uses_image_features(params["train_image"]):
        for table in TABLES:
            rows = len(load_images(dataset / f"{table}_images.npy"))
            np.save(out / f"{table}.npy", np.zeros((rows, 0), dtype=np.float32))
        write_json({"computed": False}, model_dir / "extractor.json")
        log.info("train_image.input=%s: nothing reads frozen features, none computed", params["train_image"]["input"])
        return
    extract_features(p, size, dataset, out, model_dir)
    write_json({"computed": True, "backbone": p["backbone"], "weights": p["weights"], "size": size},
               model_dir / "extractor.json")


if __name__ == "__main__":
    main()
