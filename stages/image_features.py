"""Stage `image_features`: pooled features of a frozen pretrained backbone, computed once per image.

Heads trained on them (train_image.input=features) can then be swept without decoding or
running the backbone again: DVC reuses this stage's outputs while image_features params hold.
"""

import logging
import sys
from pathlib import Path

from rakuten_mm.data.dataset import load_images
from rakuten_mm.models.image import PretrainedWeightsUnavailableError, build_feature_extractor
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.training import write_features
from rakuten_mm.stage import start_stage

log = logging.getLogger("image_features")
TABLES = ("labelled", "unlabelled")


def main() -> None:
    """Run the frozen backbone over every labelled and unlabelled image; save it and the features."""
    params, args = start_stage("image_features", ["dataset", "features", "model"], "Frozen image features.")
    p, size = params["image_features"], params["image"]["size"]
    set_determinism(p["seed"])
    try:
        extractor = build_feature_extractor(p, size)
    except PretrainedWeightsUnavailableError as error:
        log.error("%s", error)
        sys.exit(1)
    out = Path(args.features)
    out.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        features = write_features(extractor, load_images(Path(args.dataset) / f"{table}_images.npy"),
                                  p["batch_size"], out / f"{table}.npy")
        log.info("%s: features %s", table, features.shape)
    save_keras_model(extractor, Path(args.model) / "extractor.keras")
    write_json({"backbone": p["backbone"], "weights": p["weights"], "size": size}, Path(args.model) / "extractor.json")


if __name__ == "__main__":
    main()
