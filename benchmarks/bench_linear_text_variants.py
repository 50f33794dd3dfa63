"""How far bag-of-n-grams text models go on the real sample: linear variants and their averages.

On the 540 real rows, each variant is fitted on 4/5 of the rows and scored on the rest (stratified
5-fold, three shuffles: 15 folds), all reading the project's cleaned model input (params.yaml
`tfidf`: title_repeats, max_description_chars) and, except the char-only one, the project's tf-idf
union. Averages combine the members' probabilities (an SVM's decision values through a softmax at
temperature 1/5). Writes mean and standard deviation of the test weighted F1 over the folds to
benchmarks/results/linear_text_variants.{json,md}. A question this answers for the fusion: does any
second bag-of-n-grams model add to the linear baseline on few real rows?

    python benchmarks/bench_linear_text_variants.py [data] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from rakuten_mm.data.dataset import clean_table  # noqa: E402
from rakuten_mm.data.raw_layout import LABEL_COLUMN, read_labelled  # noqa: E402
from rakuten_mm.features.text import model_input_texts  # noqa: E402
from rakuten_mm.features.tfidf import build_tfidf_union  # noqa: E402
from run_info import commit, machine  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "rakuten-real-sample"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "linear_text_variants.json"
SVM_TEMPERATURE = 5.0


def real_texts(data: Path, params: dict) -> tuple[list[str], np.ndarray]:
    """The model input strings and product type codes of the labelled rows."""
    table = clean_table(read_labelled(data / "X_train_update.csv", data / "Y_train_CVw08PX.csv"))
    texts = model_input_texts(table["title"], table["description"], params["max_description_chars"],
                              params["title_repeats"])
    return texts, table[LABEL_COLUMN].to_numpy()


def svm_probabilities(fitted, scored, labels: np.ndarray, svm_c: float) -> np.ndarray:
    """A LinearSVC's decision values on the scored rows through a softmax at temperature 1/SVM_TEMPERATURE."""
    return softmax(LinearSVC(C=svm_c).fit(fitted, labels).decision_function(scored) * SVM_TEMPERATURE, axis=1)


def fold_probabilities(train: list[str], test: list[str], labels: np.ndarray, params: dict,
                       svm_c: float) -> dict[str, np.ndarray]:
    """Each single variant's class probabilities on the test texts (columns: sorted labels)."""
    union = build_tfidf_union(params)
    fitted, scored = union.fit_transform(train), union.transform(test)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 6), sublinear_tf=True)
    return {
        "svm": svm_probabilities(fitted, scored, labels, svm_c),
        "logistic": LogisticRegression(C=20, max_iter=2000).fit(fitted, labels).predict_proba(scored),
        "complement_nb": ComplementNB(alpha=0.3).fit(fitted, labels).predict_proba(scored),
        "svm_char_2_6": svm_probabilities(chars.fit_transform(train), chars.transform(test), labels, svm_c),
    }


def score_variants(texts: list[str], labels: np.ndarray, params: dict, svm_c: float, seeds: list[int]) -> dict:
    """Test weighted F1 of every variant and average, per fold."""
    averages = {"svm+logistic": ("svm", "logistic"), "svm+complement_nb": ("svm", "complement_nb"),
                "svm+svm_char_2_6": ("svm", "svm_char_2_6"),
                "svm+complement_nb+svm_char_2_6": ("svm", "complement_nb", "svm_char_2_6")}
    scores: dict[str, list[float]] = {}
    classes = np.unique(labels)
    for seed in seeds:
        for fit, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(texts, labels):
            probabilities = fold_probabilities([texts[i] for i in fit], [texts[i] for i in held], labels[fit],
                                               params, svm_c)
            probabilities.update({name: sum(probabilities[member] for member in members)
                                  for name, members in averages.items()})
            for name, probs in probabilities.items():
                predicted = classes[probs.argmax(1)]
                scores.setdefault(name, []).append(float(f1_score(labels[held], predicted, average="weighted")))
    return scores


def write_results(results: dict, out: Path) -> None:
    """The JSON and a Markdown table beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Linear text variants on the real sample (commit {results['commit']})", "",
             f"{results['rows']} labelled rows, stratified 5-fold x seeds {results['seeds']}: "
             f"{results['folds']} folds; {results['machine']['cpu']}, {results['machine']['cores']} cores.", "",
             "| variant | test weighted F1, mean | std over folds |", "|---|---|---|"]
    for name, values in results["scores"].items():
        lines.append(f"| {name} | {np.mean(values):.3f} | {np.std(values):.3f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Score every variant over the folds and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    texts, labels = real_texts(args.data, params["tfidf"])
    seeds = [int(seed) for seed in args.seeds.split(",")]
    scores = score_variants(texts, labels, params["tfidf"], params["train_baseline"]["C"], seeds)
    results = {"commit": commit(), "machine": machine(), "rows": len(labels), "seeds": seeds,
               "folds": len(next(iter(scores.values()))), "scores": scores}
    write_results(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
