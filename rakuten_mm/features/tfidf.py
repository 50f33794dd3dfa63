"""Word and character tf-idf of the model input texts: fitted once on the train rows, read by every text member.

scikit-learn fits the vocabularies and idf weights and its analyzers split the texts; the
transform is this module's own, because scikit-learn's pays about 1.5 ms of input validation
per call whatever the number of texts, and a request featurizes one product. The two agree to
float32 rounding (tests/test_tfidf.py).
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from sklearn.pipeline import FeatureUnion

# scikit-learn and skops are imported where the featurizer is built, saved or loaded: train_text
# only reads the cached rows (load_features) and would pay about 1.5 s of CPU importing them.


FIT_ON = {"train": ("train",), "train_val": ("train", "val")}


def featurizer_rows(split, fit_on: str) -> np.ndarray:
    """Row positions the featurizer is fitted on: tfidf.fit_on is train or train_val (never test)."""
    if fit_on not in FIT_ON:
        raise ValueError(f"tfidf.fit_on must be one of {sorted(FIT_ON)}, got {fit_on!r}")
    return np.flatnonzero(split["split"].isin(FIT_ON[fit_on]).to_numpy())


def build_tfidf_union(params: dict) -> FeatureUnion:
    """Unfitted word n-gram and char_wb n-gram TfidfVectorizers, each block L2-normalised."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    # Each block normalised apart: long descriptions then weigh no more than short titles, and
    # the character block (3-5-grams: plurals, accents, model numbers) no more than the words.
    options = dict(sublinear_tf=params["sublinear_tf"], min_df=params["min_df"], dtype=np.float32)
    return FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=tuple(params["word_ngrams"]),
                                  max_features=params["word_max_features"], **options)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params["char_ngrams"]),
                                  max_features=params["char_max_features"], **options)),
    ])


class TfidfFeaturizer:
    """A fitted tf-idf FeatureUnion and a fast transform that gives the same CSR rows."""

    def __init__(self, union: FeatureUnion):
        self.union = union
        self.blocks = [vectorizer for _, vectorizer in union.transformer_list]
        self.analyzers = [vectorizer.build_analyzer() for vectorizer in self.blocks]
        self.vocabularies = [vectorizer.vocabulary_ for vectorizer in self.blocks]
        self.idf = np.concatenate([vectorizer.idf_ for vectorizer in self.blocks]).astype(np.float32)
        widths = [len(vocabulary) for vocabulary in self.vocabularies]
        self.offsets = np.cumsum([0, *widths[:-1]])
        self.width = int(sum(widths))
        self.sublinear_tf = [vectorizer.sublinear_tf for vectorizer in self.blocks]

    @classmethod
    def fit_transform(cls, texts: list[str], fit_rows: np.ndarray,
                      params: dict) -> tuple["TfidfFeaturizer", sparse.csr_matrix]:
        """A featurizer fitted on texts[fit_rows] and the features of all texts."""
        fit_rows = np.asarray(fit_rows)
        union = build_tfidf_union(params)
        # fit_transform analyses the fitting rows once for both the vocabulary and their features.
        fitted_rows = union.fit_transform(np.asarray([texts[row] for row in fit_rows], dtype=object))
        for _, vectorizer in union.transformer_list:
            # stop_words_ is a set (saved in per-process hash order) that scikit-learn documents
            # as safe to delete; numpy-int indices would become one skops array file each.
            vectorizer.stop_words_ = None
            vectorizer.vocabulary_ = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
        featurizer = cls(union)
        others = np.setdiff1d(np.arange(len(texts)), fit_rows)
        features = sparse.vstack([fitted_rows.tocsr(), featurizer.transform([texts[row] for row in others])],
                                 format="csr", dtype=np.float32)
        # Back to the texts' order: row i of the stacked matrix is text order[i].
        order = np.concatenate([fit_rows, others])
        features = features[np.argsort(order, kind="stable")]
        features.sort_indices()
        return featurizer, features

    def count_terms(self, texts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every (text, block) pair's n-gram counts: row, block, column in the block (-1: unknown), count."""
        columns, counts, lengths = [], [], []
        for text in texts:
            for analyze, vocabulary in zip(self.analyzers, self.vocabularies):
                terms = Counter(analyze(text))
                # map() and extend() keep the per-n-gram work in C: a Python loop over the ~1,500
                # distinct n-grams of a product cost more than the analyzers themselves.
                columns.extend(map(vocabulary.get, terms.keys(), repeat(-1)))
                counts.extend(terms.values())
                lengths.append(len(terms))
        n_blocks = len(self.blocks)
        rows = np.repeat(np.repeat(np.arange(len(texts)), n_blocks), lengths)
        blocks = np.repeat(np.tile(np.arange(n_blocks), len(texts)), lengths)
        return rows, blocks, np.asarray(columns, dtype=np.int64), np.asarray(counts, dtype=np.float32)

    def transform(self, texts) -> sparse.csr_matrix:
        """tf-idf rows (float32 CSR, sorted indices) of model input texts, as the fitted union gives them."""
        rows, blocks, columns, values = self.count_terms(texts)
        known = columns >= 0
        rows, blocks, values = rows[known], blocks[known], values[known]
        columns = columns[known] + self.offsets[blocks]
        sublinear = np.asarray(self.sublinear_tf)[blocks]
        values[sublinear] = 1.0 + np.log(values[sublinear])
        values *= self.idf[columns]
        # One L2 norm per (row, block): the key row * n_blocks + block.
        keys = rows * len(self.blocks) + blocks
        norms = np.sqrt(np.bincount(keys, weights=values.astype(np.float64) ** 2,
                                    minlength=len(texts) * len(self.blocks)))
        values /= np.maximum(norms[keys], np.finfo(np.float32).tiny).astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(texts)))]).astype(np.int32)
        matrix = sparse.csr_matrix((values, columns.astype(np.int32), indptr), shape=(len(texts), self.width))
        matrix.sort_indices()
        return matrix

    def save(self, path: str | Path) -> None:
        """Save the fitted union as a .skops file (no pickle) and its terms as JSON; bytes depend on the fit only."""
        for vectorizer in self.blocks:
            # An id() (a memory address) that build_analyzer() stores to skip re-checking the
            # stop words, which are None here: new at every run, so it never goes in the file.
            vars(vectorizer).pop("_stop_words_id", None)
        from rakuten_mm.models.sklearn_files import save_sklearn_model

        # skops writes a dict entry by entry (the default run's 73,742 terms: 5.9 s to save,
        # 2.4 s to load); a JSON list of each block's terms in column order takes milliseconds.
        terms = [sorted(vocabulary, key=vocabulary.__getitem__) for vocabulary in self.vocabularies]
        vocabulary_file(path).parent.mkdir(parents=True, exist_ok=True)
        vocabulary_file(path).write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
        for vectorizer in self.blocks:
            del vectorizer.vocabulary_
        try:
            save_sklearn_model(self.union, path)
        finally:
            for vectorizer, vocabulary in zip(self.blocks, self.vocabularies, strict=True):
                vectorizer.vocabulary_ = vocabulary

    @classmethod
    def load(cls, path: str | Path) -> "TfidfFeaturizer":
        """Load a featurizer saved by save() (or, without a vocabulary file, one saved whole in the .skops)."""
        from rakuten_mm.models.sklearn_files import load_sklearn_model

        union = load_sklearn_model(path)
        if vocabulary_file(path).is_file():
            terms = json.loads(vocabulary_file(path).read_text(encoding="utf-8"))
            for (_, vectorizer), block_terms in zip(union.transformer_list, terms, strict=True):
                vectorizer.vocabulary_ = {term: column for column, term in enumerate(block_terms)}
        return cls(union)


def vocabulary_file(featurizer_path: str | Path) -> Path:
    """The JSON file of terms saved beside a featurizer's .skops file."""
    return Path(featurizer_path).with_suffix(".vocabulary.json")


def save_features(matrix: sparse.csr_matrix, path: str | Path) -> None:
    """Write a CSR matrix as an uncompressed .npz (compression would make every read slower)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sparse.save_npz(path, matrix, compressed=False)


def load_features(path: str | Path) -> sparse.csr_matrix:
    """Read a CSR matrix written by save_features."""
    return sparse.load_npz(path).tocsr()
