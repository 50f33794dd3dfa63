"""Drift scores of production traffic against a reference: PSI for numbers, PSI or chi-square for categories."""

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from scipy import stats

# Feature name -> kind; the order is the report's and the plot's.
FEATURES = {
    "title_length": "numeric",
    "description_missing": "categorical",
    "image_missing": "categorical",
    "language": "categorical",
    "predicted_class": "categorical",
    "confidence": "numeric",
}
# PSI takes log(share ratio): an empty bin counts as this share instead of 0 (the usual convention).
EMPTY_BIN_SHARE = 1e-4
POOLED_LABEL = "(rare)"


@dataclass
class FeatureDrift:
    """One feature's verdict and the two distributions it compared (bins or categories)."""

    test: str
    score: float
    threshold: float
    labels: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    production_shares: list[float] = field(default_factory=list)
    n_reference: int = 0
    n_production: int = 0

    @property
    def drifted(self) -> bool:
        """True when the score is above the threshold (both tests: higher means more drift)."""
        return self.score > self.threshold


@dataclass
class DriftResult:
    """Every feature's drift and the largest sample sizes behind them; features is empty without a verdict."""

    n_production: int
    n_reference: int
    features: dict[str, FeatureDrift]
    status: str = "ok"
    # Share of the production predictions the API sent to review (None: no log line says).
    review_share: float | None = None

    @property
    def drift_detected(self) -> bool:
        """True when at least one feature drifted."""
        return any(feature.drifted for feature in self.features.values())


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (ties merged, so there may be fewer bins)."""
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def binned_shares(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Share of values in each bin; the outer bins are open-ended."""
    counts = np.bincount(np.searchsorted(inner_edges, values, side="right"), minlength=len(inner_edges) + 1)
    return counts / max(counts.sum(), 1)


def psi(reference_shares: np.ndarray, production_shares: np.ndarray) -> float:
    """Population stability index: sum of (p - r) * ln(p / r) over the bins."""
    reference_shares = np.clip(reference_shares, EMPTY_BIN_SHARE, None)
    production_shares = np.clip(production_shares, EMPTY_BIN_SHARE, None)
    return float(np.sum((production_shares - reference_shares) * np.log(production_shares / reference_shares)))


def bin_labels(inner_edges: np.ndarray) -> list[str]:
    """Readable names of the bins: '<12', '12-31.5', ..., '>=80'."""
    if len(inner_edges) == 0:
        return ["all"]
    edges = [f"{edge:.3g}" for edge in inner_edges]
    middle = [f"{low}-{high}" for low, high in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]}", *middle, f">={edges[-1]}"]


def numeric_psi(reference: pd.Series, production: pd.Series, bins: int, threshold: float) -> FeatureDrift:
    """PSI of a numeric feature over quantile bins of the reference."""
    reference_values, production_values = reference.to_numpy(float), production.to_numpy(float)
    edges = quantile_edges(reference_values, bins)
    reference_shares, production_shares = binned_shares(reference_values, edges), binned_shares(production_values, edges)
    return FeatureDrift("psi", psi(reference_shares, production_shares), threshold, bin_labels(edges),
                        reference_shares.tolist(), production_shares.tolist())


def category_counts(reference: pd.Series, production: pd.Series) -> pd.DataFrame:
    """Counts per category (as text) in both samples, one column each, sorted by reference frequency."""
    counts = pd.DataFrame({"reference": reference.astype(str).value_counts(),
                           "production": production.astype(str).value_counts()}).fillna(0)
    return counts.sort_values(["reference", "production"], ascending=False)


def categorical_psi(reference: pd.Series, production: pd.Series, threshold: float) -> FeatureDrift:
    """PSI of a categorical feature over its categories (one seen on one side only counts as empty on the other)."""
    counts = category_counts(reference, production)
    shares = counts / counts.sum().clip(lower=1)
    return FeatureDrift("psi", psi(shares["reference"].to_numpy(), shares["production"].to_numpy()), threshold,
                        counts.index.tolist(), shares["reference"].tolist(), shares["production"].tolist())


def pool_rare_categories(counts: pd.DataFrame, min_expected: float) -> pd.DataFrame:
    """Merge the categories expected fewer than min_expected times in the smaller sample into one."""
    combined_share = counts.sum(axis=1) / counts.to_numpy().sum()
    rare = combined_share * counts.sum().min() < min_expected
    if rare.sum() < 2:
        return counts
    pooled = counts[~rare].copy()
    pooled.loc[POOLED_LABEL] = counts[rare].sum()
    return pooled


def categorical_chi2(reference: pd.Series, production: pd.Series, alpha: float, min_expected: float) -> FeatureDrift:
    """Chi-square test of homogeneity; score = statistic, threshold = its critical value at alpha."""
    counts = pool_rare_categories(category_counts(reference, production), min_expected)
    counts = counts[counts.sum(axis=1) > 0]
    shares = counts / counts.sum().clip(lower=1)
    if len(counts) < 2:
        # A single category on both sides: nothing can have shifted.
        statistic, dof = 0.0, 1
    else:
        statistic, _, dof, _ = stats.chi2_contingency(counts.T.to_numpy(), correction=False)
    return FeatureDrift("chi2", float(statistic), float(stats.chi2.ppf(1.0 - alpha, dof)), counts.index.tolist(),
                        shares["reference"].tolist(), shares["production"].tolist())


def score_feature(name: str, reference: pd.Series, production: pd.Series, params: dict) -> FeatureDrift:
    """The drift of one feature with the test params.yaml names for it."""
    test = params["tests"][name]
    if test == "chi2" and FEATURES[name] == "categorical":
        return categorical_chi2(reference, production, params["chi2"]["alpha"], params["chi2"]["min_expected"])
    if test != "psi":
        raise ValueError(f"monitor.tests.{name}: {test!r} is not a test for a {FEATURES[name]} feature")
    if FEATURES[name] == "numeric":
        return numeric_psi(reference, production, params["psi"]["bins"], params["psi"]["threshold"])
    return categorical_psi(reference, production, params["psi"]["threshold"])


def review_share(production: pd.DataFrame) -> float | None:
    """Share of the predictions answered `review`, over the log lines that carry a decision (older ones do not)."""
    decisions = production["decision"].dropna() if "decision" in production else pd.Series(dtype=object)
    return float((decisions == "review").mean()) if len(decisions) else None


def detect_drift(reference: dict[str, pd.Series], production: pd.DataFrame, params: dict) -> DriftResult:
    """Score every feature; below min_samples production rows there is no verdict (status insufficient_data)."""
    n_reference = max(len(values) for values in reference.values())
    if len(production) < params["min_samples"]:
        return DriftResult(len(production), n_reference, {}, status="insufficient_data",
                           review_share=review_share(production))
    features = {}
    for name in FEATURES:
        # A log line without the field (an older API version) is left out of that feature only.
        values = production[name].dropna() if name in production else pd.Series(dtype=float)
        if len(values) >= params["min_samples"]:
            features[name] = score_feature(name, reference[name].dropna(), values, params)
            features[name].n_reference, features[name].n_production = len(reference[name].dropna()), len(values)
    return DriftResult(len(production), n_reference, features, review_share=review_share(production))


def drift_report(result: DriftResult, generated_at: datetime | None = None) -> dict:
    """The drift report JSON agreed with the API (extra keys: status and per-feature distributions)."""
    generated_at = generated_at or datetime.now(timezone.utc)
    return {
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "status": result.status,
        "n_production": result.n_production,
        "n_reference": result.n_reference,
        "drift_detected": result.drift_detected,
        "review_share": None if result.review_share is None else round(result.review_share, 6),
        "features": {
            name: {"test": feature.test, "score": round(feature.score, 6), "threshold": round(feature.threshold, 6),
                   "drifted": feature.drifted, "n_reference": feature.n_reference,
                   "n_production": feature.n_production, "bins": feature.labels,
                   "reference_shares": [round(share, 6) for share in feature.reference_shares],
                   "production_shares": [round(share, 6) for share in feature.production_shares]}
            for name, feature in result.features.items()
        },
    }
