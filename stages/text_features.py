"""Stage `text_features`: pooled embeddings of a frozen pretrained text encoder, computed once per product.

With train_text.model=encoder and train_text.encoder.trainable=false, train_text fits only a head
on these, so head sweeps rerun nothing here. For any other text model (or a fine-tuned encoder)
the stage loads no preset and writes an empty (rows × 0) array: it costs a second.
"""

import logging
import sys
import time
from pathlib import Path

import numpy as np

from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.params import uses_cached_embeddings
from rakuten_mm.stage import start_stage

log = logging.getLogger("text_features")


def embed_with_frozen_encoder(settings: dict, texts: list[str], features: Path, model_dir: Path) -> None:
    """Embed the texts with the preset's frozen encoder; write the embeddings and the encoder."""
    # Imported here: the other text models skip this stage without paying for TensorFlow's import.
    from rakuten_mm.models.encoder import (  # noqa: PLC0415
        PresetUnavailableError, build_text_encoder, write_embeddings,
    )
    from rakuten_mm.models.keras_files import save_keras_model  # noqa: PLC0415

    try:
        encoder = build_text_encoder(settings["preset"], settings["sequence_length"], trainable=False)
    except PresetUnavailableError as error:
        log.error("%s", error)
        sys.exit(1)
    started = time.perf_counter()
    embeddings = write_embeddings(encoder, texts, settings["batch_size"], features / "labelled.npy")
    seconds = time.perf_counter() - started
    log.info("embedded %d products in %.1f s (%.2f s per 1,000): %s", len(texts), seconds,
             1000 * seconds / max(len(texts), 1), embeddings.shape)
    save_keras_model(encoder, model_dir / "encoder.keras")


def main() -> None:
    """Embed every labelled product's text with the frozen encoder; save the encoder and the embeddings."""
    params, args = start_stage("text_features", ["dataset", "features", "model"], "Frozen text encoder features.")
    p = params["train_text"]
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    texts = model_input_texts(table["title"], table["description"], p["max_description_chars"])
    features, model_dir = Path(args.features), Path(args.model)
    features.mkdir(parents=True, exist_ok=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    if not uses_cached_embeddings(p):
        np.save(features / "labelled.npy", np.zeros((len(texts), 0), dtype=np.float32))
        write_json({"cached": False}, model_dir / "encoder.json")
        log.info("train_text.model=%s: no frozen encoder, nothing to embed", p["model"])
        return
    settings = p["encoder"]
    embed_with_frozen_encoder(settings, texts, features, model_dir)
    write_json({"cached": True, "preset": settings["preset"], "sequence_length": settings["sequence_length"],
                "max_description_chars": p["max_description_chars"]}, model_dir / "encoder.json")


if __name__ == "__main__":
    main()
