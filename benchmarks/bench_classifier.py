"""Benchmark the served chain in one process: one real product at a time through ProductClassifier.

For each of --products real products (title, description and photo from the real sample; synthetic
ones when it is absent) it times, --repeats times each, in the order a request runs them:
  preparation  prepare_product: both texts cleaned, the photo decoded and preprocessed
  tfidf        the shared featurizer's row (once per product, read by the text and baseline members)
  text, baseline, image   each member the fusion serves, on the prepared inputs
  fusion       apply_fusion on the members' probabilities
  predict_proba  the whole model call (tfidf + members + fusion), timed on its own
and writes p50/p95 milliseconds, the commit and the machine to benchmarks/results/classifier.{json,md}.

    python benchmarks/bench_classifier.py [--models models] [--products 50] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from rakuten_mm.data.raw_layout import image_filename, read_features  # noqa: E402
from rakuten_mm.models.fusion import apply_fusion  # noqa: E402
from rakuten_mm.models.predictor import ProductClassifier  # noqa: E402
from run_info import commit, machine  # noqa: E402

REAL_SAMPLE = REPO_ROOT.parent / "shared" / "rakuten-real-sample"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "classifier.json"
TARGET_PREPARATION_MS = 1.5
TARGET_PREDICT_MS = 3.0


def real_products(count: int) -> list[tuple[str, str, bytes]]:
    """(designation, description, JPEG bytes) of the first real sample products that have a photo."""
    table = read_features(REAL_SAMPLE / "X_train_update.csv")
    products = []
    for row in table.itertuples():
        photo = REAL_SAMPLE / "image_train" / image_filename(row.imageid, row.productid)
        if photo.is_file():
            description = row.description if isinstance(row.description, str) else ""
            products.append((row.designation, description, photo.read_bytes()))
        if len(products) == count:
            break
    return products


def timed(function, repeats: int) -> tuple[list[float], object]:
    """Milliseconds of each of repeats calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000.0)
    return times, result


def time_product(classifier: ProductClassifier, product: tuple, repeats: int) -> dict[str, list[float]]:
    """Each part's milliseconds for one product, repeats times."""
    times, prepared = timed(lambda: classifier.prepare_product(*product), repeats)
    title, description, image, has_image = prepared
    parts = {"preparation": times}
    images, has_images = image[None], np.array([has_image])
    parts["tfidf"], rows = timed(lambda: classifier.tfidf_rows([title], [description]), repeats)
    probs = {}
    members = {"text": lambda: classifier.predict_text([title], [description], rows),
               "baseline": lambda: classifier.predict_baseline(rows),
               "image": lambda: classifier.predict_image(images, has_images)}
    for name in classifier.members:
        parts[name], probs[name] = timed(members[name], repeats)
    parts["fusion"], _ = timed(lambda: apply_fusion(classifier.fusion, probs), repeats)
    parts["predict_proba"], _ = timed(lambda: classifier.predict_proba([title], [description], images, has_images),
                                      repeats)
    return parts


def write_results(results: dict, out: Path) -> None:
    """The JSON and a Markdown table beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Served chain, one product at a time (commit {results['commit']})", "",
             f"{results['machine']['cpu']}, {results['machine']['cores']} cores, load average "
             f"{results['machine']['load_average_1m']:.2f}; {results['products']} real products x "
             f"{results['repeats']} repeats; members served: {', '.join(results['members'])}.", "",
             "| part | p50 ms | p95 ms |", "|---|---|---|"]
    lines += [f"| {name} | {value['p50_ms']:.3f} | {value['p95_ms']:.3f} |" for name, value in results["parts"].items()]
    lines += ["", f"Targets: preparation <= {TARGET_PREPARATION_MS} ms p50, predict_proba <= {TARGET_PREDICT_MS} ms p50."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Time every part of the served chain on real products and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(REPO_ROOT / "models"))
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not (REAL_SAMPLE / "X_train_update.csv").is_file():
        sys.exit(f"the real sample is needed: {REAL_SAMPLE}")
    classifier = ProductClassifier(args.models)
    classifier.warm_up()
    samples: dict[str, list[float]] = {}
    for product in real_products(args.products):
        for name, times in time_product(classifier, product, args.repeats).items():
            samples.setdefault(name, []).extend(times)
    parts = {name: {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}
             for name, times in samples.items()}
    results = {"commit": commit(), "machine": machine(), "products": args.products, "repeats": args.repeats,
               "members": list(classifier.members), "parts": parts}
    write_results(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
