"""CPU cost of KerasHub text encoders per 1,000 products: frozen embedding, fine-tuning, served latency.

    python benchmarks/bench_encoders.py [--architectures tiny,distil_bert_base_multi,xlm_roberta_base_multi]
        [--sequence-length 128] [--embed-texts 64] [--train-texts 32] [--repeats 2]
        [--out benchmarks/results/encoders.json]

Offline: no preset is downloaded. Each architecture is built with the layer sizes of the named
KerasHub preset and random weights, with a small vocabulary trained on synthetic product texts
(the real presets' embedding tables are kept at their full size). Every text is packed to
--sequence-length tokens, so the cost does not depend on the weights or the vocabulary: these are
the compute costs of the real presets on this machine, not their accuracy. Rates are measured on
a few dozen texts and scaled to 1,000 (a frozen embedding pass or a fine-tuning epoch is linear in
the number of products). Results go to encoders.json and encoders.md beside --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT))

from bench_pipeline_scale import machine  # noqa: E402
from encoder_support import save_distil_bert_preset, save_xlm_roberta_preset  # noqa: E402
from rakuten_mm.categories import CODES  # noqa: E402
from rakuten_mm.data.synthetic_text import make_product_text  # noqa: E402
from rakuten_mm.features.text import clean_text, model_input_text  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "encoders.json"
# Layer sizes of KerasHub's presets (keras_hub 0.32 preset configs); "tiny" is the tests' preset.
ARCHITECTURES = {
    "tiny": ("distil_bert", {"max_sequence_length": 512}),
    "distil_bert_base_multi": ("distil_bert", {"vocabulary_size": 119547, "num_layers": 6, "num_heads": 12,
                                               "hidden_dim": 768, "intermediate_dim": 3072,
                                               "max_sequence_length": 512}),
    "xlm_roberta_base_multi": ("xlm_roberta", {"vocabulary_size": 250002, "num_layers": 12, "num_heads": 12,
                                               "hidden_dim": 768, "intermediate_dim": 3072,
                                               "max_sequence_length": 512}),
}
MAX_DESCRIPTION_CHARS = 600


def product_texts(count: int, seed: int = 0) -> list[str]:
    """Cleaned title + description strings of synthetic products, as train_text builds them."""
    rng = random.Random(seed)
    products = [make_product_text(CODES[i % len(CODES)], rng) for i in range(count)]
    return [model_input_text(clean_text(p.designation), clean_text(p.description or ""), MAX_DESCRIPTION_CHARS)
            for p in products]


def build_preset(name: str, folder: Path, texts: list[str], sequence_length: int) -> Path:
    """A preset folder with the architecture's layer sizes and a vocabulary trained on texts."""
    family, sizes = ARCHITECTURES[name]
    sizes = dict(sizes)
    vocabulary_size = sizes.pop("vocabulary_size", None)
    saver = save_distil_bert_preset if family == "distil_bert" else save_xlm_roberta_preset
    # 400 pieces: enough for every character of the synthetic texts (SentencePiece needs them all).
    preset = saver(folder, texts, vocabulary_size=400, sequence_length=sequence_length, **sizes)
    if vocabulary_size:
        resize_embeddings(preset, family, vocabulary_size)
    return preset


def resize_embeddings(preset: Path, family: str, vocabulary_size: int) -> None:
    """Give the saved backbone the real preset's vocabulary size (token ids stay in the small vocabulary)."""
    from rakuten_mm.models.encoder import import_keras_hub

    keras_hub = import_keras_hub()
    config = json.loads((preset / "config.json").read_text())
    config["config"]["vocabulary_size"] = vocabulary_size
    backbone_class = (keras_hub.models.DistilBertBackbone if family == "distil_bert"
                      else keras_hub.models.XLMRobertaBackbone)
    backbone = backbone_class.from_config(config["config"])
    backbone.save_to_preset(str(preset))


def seconds_per_thousand(run, count: int, repeats: int) -> float:
    """The fastest of `repeats` timed calls of run() (after a warm-up call), scaled to 1,000 products."""
    # The fastest: on a machine shared with other jobs, the slower calls measure the others too.
    run()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return 1000 * min(timings) / count


def measure(name: str, texts: list[str], args: argparse.Namespace, workdir: Path) -> dict:
    """Frozen embedding and fine-tuning cost per 1,000 products, and served latency of one product."""
    import keras

    from rakuten_mm.models.encoder import build_encoder_head, build_text_encoder, string_batches
    from rakuten_mm.models.predictor import compile_forward
    from rakuten_mm.models.text import assemble_text_model, text_tensor

    preset = build_preset(name, workdir / name, texts, args.sequence_length)
    frozen = build_text_encoder(str(preset), args.sequence_length, trainable=False)
    embed_texts = text_tensor(texts[:args.embed_texts])
    embed = seconds_per_thousand(lambda: frozen.predict(embed_texts, batch_size=args.batch_size, verbose=0),
                                 args.embed_texts, args.repeats)
    tuned = build_text_encoder(str(preset), args.sequence_length, trainable=True)
    model = assemble_text_model(tuned, build_encoder_head(tuned.output.shape[-1],
                                                          {"dropout": 0.1, "hidden_units": 0}, len(CODES)))
    model.compile(optimizer=keras.optimizers.Adam(3e-5), loss="sparse_categorical_crossentropy")
    labels = np.arange(args.train_texts) % len(CODES)
    batches = string_batches(texts[:args.train_texts], labels, args.batch_size, shuffle_seed=None)
    fine_tune = seconds_per_thousand(lambda: model.fit(batches, epochs=1, verbose=0), args.train_texts, args.repeats)
    forward = compile_forward(model)
    one = text_tensor(texts[:1])
    latencies = []
    for _ in range(args.latency_calls + 1):
        started = time.perf_counter()
        forward(one)
        latencies.append(1000 * (time.perf_counter() - started))
    return {"parameters": int(tuned.count_params()), "embed_s_per_1000": round(embed, 2),
            "fine_tune_epoch_s_per_1000": round(fine_tune, 2),
            "served_latency_ms_p50": round(float(np.median(latencies[1:])), 2)}


def markdown_report(result: dict) -> str:
    """One row per architecture."""
    m = result["machine"]
    lines = [f"{m['cpu']}, {m['cores']} cores, shared: load average {result['load_average']} at the start, "
             f"{result['load_average_at_end']} at the end; sequence length {result['sequence_length']}, batch "
             f"{result['batch_size']}; fastest of {result['repeats']} runs; random weights with the presets' "
             "layer sizes (compute cost only).", "",
             "| architecture | parameters | frozen embedding, s per 1,000 | fine-tuning epoch, s per 1,000 "
             "| served latency, 1 product, ms (p50) |", "|---|---|---|---|---|"]
    for name, r in result["architectures"].items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['embed_s_per_1000']:,.1f} | "
                     f"{r['fine_tune_epoch_s_per_1000']:,.1f} | {r['served_latency_ms_p50']:,.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure each architecture in turn and write the JSON and Markdown results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--embed-texts", type=int, default=64, help="texts embedded per measurement")
    parser.add_argument("--train-texts", type=int, default=32, help="texts per measured fine-tuning epoch")
    parser.add_argument("--latency-calls", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (the fastest is kept)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    texts = product_texts(max(args.embed_texts, args.train_texts, 400))
    result = {"machine": machine(), "load_average": round(os.getloadavg()[0], 2), "repeats": args.repeats,
              "sequence_length": args.sequence_length, "batch_size": args.batch_size, "architectures": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.architectures.split(","):
            result["architectures"][name] = measure(name, texts, args, Path(workdir))
            print(name, result["architectures"][name], flush=True)
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown_report(result))
    print(markdown_report(result))


if __name__ == "__main__":
    main()
