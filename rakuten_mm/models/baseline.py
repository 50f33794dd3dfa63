"""The classical baseline: TF-IDF word and character n-grams with a linear SVM."""

from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC


def build_baseline(params: dict) -> Pipeline:
    """TF-IDF on word and char_wb n-grams feeding a LinearSVC, as in the challenge's strong baselines."""
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=tuple(params["word_ngrams"]), sublinear_tf=True,
                                  min_df=params["min_df"], max_features=params["max_features"])),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params["char_ngrams"]),
                                  sublinear_tf=True, min_df=params["min_df"],
                                  max_features=params["max_features"])),
    ])
    return Pipeline([("tfidf", features), ("svm", LinearSVC(C=params["C"], random_state=params["seed"]))])
