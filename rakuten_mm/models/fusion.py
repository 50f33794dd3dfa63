"""Late fusion of the member models' probabilities, fitted on their out-of-fold probabilities (train + validation).

A member's probabilities are NaN on rows it cannot score (the image model on products without an
image); every method then relies on the other members for those rows.
"""

import itertools

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from rakuten_mm.categories import CODES
from rakuten_mm.evaluation.metrics import weighted_f1

FUSION_METHODS = ("auto", "weighted", "stacking")
WEIGHT_OBJECTIVES = ("f1", "log_loss", "equal")
_EPS = 1e-7


def scored_rows(probabilities: np.ndarray) -> np.ndarray:
    """Rows a member predicted (no NaN)."""
    return ~np.isnan(probabilities).any(axis=1)


def full_coverage_members(probs: dict[str, np.ndarray]) -> list[str]:
    """Members that score every row: the only ones that can be served alone."""
    return [name for name, p in probs.items() if scored_rows(p).all()]


def informative_members(probs: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, np.ndarray]:
    """The members whose weighted F1 on the rows they score beats a uniform guess (1 / classes)."""
    # An image CNN trained from scratch on ~16 photos a class predicts below chance. On a few dozen
    # validation rows a weighted fusion can still give it most of the weight by luck (F1 ties,
    # broken by a log-loss that a flat member lowers), which flattens the fused confidence that
    # the review threshold reads: such a fold filed nothing automatically.
    chance = 1.0 / len(CODES)
    kept = {name: p for name, p in probs.items() if scored_rows(p).any()
            and weighted_f1(labels[scored_rows(p)], p[scored_rows(p)].argmax(1)) > chance}
    # Never leave the fusion without a member that scores every row (tiny test runs).
    return kept if full_coverage_members(kept) else probs


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """Every weight vector on a grid of the given step whose weights are ≥ 0 and sum to 1."""
    parts = int(round(1.0 / step))
    points = [combo for combo in itertools.product(range(parts + 1), repeat=n_members) if sum(combo) == parts]
    return np.asarray(points, dtype=float) / parts


def weighted_average(probs: dict[str, np.ndarray], weights: dict[str, float], fallback: str) -> np.ndarray:
    """Σ weight·probabilities over the members that scored each row, renormalised per row."""
    n_rows = len(probs[fallback])
    total = np.zeros_like(probs[fallback], dtype=np.float64)
    norm = np.zeros(n_rows)
    for name, weight in weights.items():
        rows = scored_rows(probs[name])
        total[rows] += weight * probs[name][rows]
        norm[rows] += weight
    # Rows that only zero-weight or missing members could score take the fallback member's answer.
    empty = norm == 0
    total[empty], norm[empty] = probs[fallback][empty], 1.0
    return (total / norm[:, None]).astype(np.float32)


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    return float(-np.log(probabilities[np.arange(len(labels)), labels] + _EPS).mean())


def fit_weighted(probs: dict[str, np.ndarray], labels: np.ndarray, grid_step: float, fallback: str,
                 objective: str) -> dict:
    """The grid weights with the best weighted F1 (ties: lowest log-loss), the lowest log-loss, or equal weights."""
    # F1 is the challenge's metric but moves in steps of one product on a few hundred rows;
    # the log-loss sees every probability. method: auto lets cross-validation choose between them.
    if objective not in WEIGHT_OBJECTIVES:
        raise ValueError(f"train_fusion.weight_objective must be one of {WEIGHT_OBJECTIVES}, got {objective!r}")
    names = list(probs)
    if objective == "equal":  # nothing fitted: nothing to overfit on a few hundred rows
        return {"method": "weighted", "weights": {name: 1.0 / len(names) for name in names}, "fallback": fallback}
    grid = simplex_grid(len(names), grid_step)
    scores = []
    for weights in grid:
        fused = weighted_average(probs, dict(zip(names, weights)), fallback)
        loss = log_loss(fused, labels)
        scores.append((weighted_f1(labels, fused.argmax(1)), -loss) if objective == "f1" else (-loss,))
    best = grid[max(range(len(grid)), key=scores.__getitem__)]
    return {"method": "weighted", "weights": {name: float(w) for name, w in zip(names, best)}, "fallback": fallback}


def stacking_features(probs: dict[str, np.ndarray], members: list[str]) -> np.ndarray:
    """Each member's log-probabilities (uniform where it scored nothing) and a column saying so."""
    columns = []
    for name in members:
        p, rows = probs[name], scored_rows(probs[name])
        filled = np.where(rows[:, None], p, 1.0 / p.shape[1])
        columns += [np.log(filled + _EPS), (~rows[:, None]).astype(float)]
    return np.concatenate(columns, axis=1)


def fit_stacking(probs: dict[str, np.ndarray], labels: np.ndarray, C: float, seed: int) -> dict:
    """Multinomial logistic regression on every member's log-probabilities, standardised while fitting."""
    members, n_classes = list(probs), len(CODES)
    if len(np.unique(labels)) < 2:
        raise ValueError("stacking needs rows from at least two classes")
    features = stacking_features(probs, members)
    # Log-probabilities down to -16 beside 0/1 columns: unscaled, lbfgs took ~750 iterations and
    # stopped where float rounding (even the BLAS thread count) moved the coefficients; scaled, ~70.
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    # ~100 columns: BLAS threads only add hand-offs (20× slower on 480 rows with 2 threads on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        model.fit((features - mean) / scale, labels)
    # The same logits from unscaled features, so that serving is one matrix product.
    weights = model.coef_ / scale
    biases = model.intercept_ - weights @ mean
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes
        weights, biases = np.vstack([-weights, weights]) / 2, np.concatenate([-biases, biases]) / 2
    # A class absent from the fitting rows keeps a huge negative bias: never predicted.
    coef = np.zeros((n_classes, features.shape[1]))
    intercept = np.full(n_classes, -1e4)
    coef[model.classes_], intercept[model.classes_] = weights, biases
    return {"method": "stacking", "members": members, "coef": coef.tolist(), "intercept": intercept.tolist(), "C": C}


def apply_fusion(fusion: dict, probs: dict[str, np.ndarray]) -> np.ndarray:
    """Fused class probabilities from the members' probabilities (only the members the fusion uses)."""
    if fusion["method"] == "member":
        return np.asarray(probs[fusion["member"]], dtype=np.float32)
    if fusion["method"] == "weighted":
        return weighted_average(probs, used_weights(fusion), fusion["fallback"])
    if fusion["method"] == "stacking":
        logits = stacking_features(probs, fusion["members"]) @ np.asarray(fusion["coef"]).T
        logits += np.asarray(fusion["intercept"])
        logits -= logits.max(axis=1, keepdims=True)
        stacked = np.exp(logits)
        return (stacked / stacked.sum(axis=1, keepdims=True)).astype(np.float32)
    raise ValueError(f"fusion method must be one of {FUSION_METHODS} or member, got {fusion['method']!r}")


def used_weights(fusion: dict) -> dict[str, float]:
    """The weighted fusion's members with a non-zero weight."""
    return {name: weight for name, weight in fusion["weights"].items() if weight > 0}


def members_used(fusion: dict) -> list[str]:
    """The members a fusion needs at prediction time (zero-weight members are never run)."""
    if fusion["method"] == "member":
        return [fusion["member"]]
    if fusion["method"] == "weighted":
        return sorted({*used_weights(fusion), fusion["fallback"]})
    return list(fusion["members"])


def fit_method(params: dict, probs: dict[str, np.ndarray], labels: np.ndarray, fallback: str) -> dict:
    """Fit the (weighted or stacking) fusion described by params on (out-of-fold) probabilities."""
    if params["method"] == "weighted":
        return fit_weighted(probs, labels, params["weight_grid_step"], fallback, params["weight_objective"])
    if params["method"] == "stacking":
        return fit_stacking(probs, labels, params["stacking_C"], params["seed"])
    raise ValueError(f"train_fusion.method must be one of {FUSION_METHODS}, got {params['method']!r}")


def candidate_methods(params: dict) -> dict[str, dict]:
    """The fusion settings to compare, by name: the one in params, or every one for method auto."""
    if params["method"] == "auto":
        settings = [{**params, "method": "weighted", "weight_objective": o} for o in WEIGHT_OBJECTIVES]
        settings.append({**params, "method": "stacking"})
    elif params["method"] in FUSION_METHODS:
        settings = [params]
    else:
        raise ValueError(f"train_fusion.method must be one of {FUSION_METHODS}, got {params['method']!r}")
    return {describe(s): s for s in settings}


def describe(settings: dict) -> str:
    """'weighted/f1', 'weighted/log_loss' or 'stacking'."""
    return f"weighted/{settings['weight_objective']}" if settings["method"] == "weighted" else settings["method"]


def cross_validated_probabilities(params: dict, probs: dict[str, np.ndarray], labels: np.ndarray,
                                  folds: np.ndarray, fallback: str) -> np.ndarray:
    """Each row's fused probabilities from a fusion fitted on the other folds (the split's folds)."""
    fused = None
    for fold in np.unique(folds):
        fit_rows, held_out = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        fusion = fit_method(params, {n: p[fit_rows] for n, p in probs.items()}, labels[fit_rows], fallback)
        predicted = apply_fusion(fusion, {n: p[held_out] for n, p in probs.items()})
        # Stacking always answers over every class, a weighted average over the members' columns.
        fused = np.empty((len(labels), predicted.shape[1]), dtype=np.float32) if fused is None else fused
        fused[held_out] = predicted
    return fused


def cross_fitted_members(probs: dict[str, np.ndarray], validation: np.ndarray | None) -> list[str]:
    """Members with out-of-fold rows outside validation; the others (not cross-fitted) score validation rows only."""
    if validation is None:
        return list(probs)
    return [name for name, p in probs.items() if scored_rows(p)[~validation].any()]


def out_of_fold_candidates(params: dict, probs: dict[str, np.ndarray], labels: np.ndarray, folds: np.ndarray,
                           members: list[str], rows: np.ndarray, fallback: str) -> dict[str, tuple]:
    """Each candidate fusion of `members` fitted on `rows`: (settings, members, rows, out-of-fold probabilities)."""
    part = {name: probs[name][rows] for name in members}
    return {f"{'+'.join(members)}/{name}": (settings, members, rows,
                                            cross_validated_probabilities(settings, part, labels[rows], folds[rows],
                                                                          fallback))
            for name, settings in tqdm(candidate_methods(params).items(), desc="fusion cross-fitting", unit="method")}


def validation_rows_fusion(params: dict, probs: dict[str, np.ndarray], labels: np.ndarray, folds: np.ndarray,
                           validation: np.ndarray) -> tuple[dict, np.ndarray]:
    """fit_fusion on the validation rows alone; out-of-fold probabilities NaN on the other rows."""
    fusion, part = fit_fusion(params, {name: p[validation] for name, p in probs.items()}, labels[validation],
                              folds[validation])
    out_of_fold = np.full((len(labels), part.shape[1]), np.nan, dtype=np.float32)
    out_of_fold[validation] = part
    return fusion, out_of_fold


def significant_winner(incumbent: str, scored: dict[str, np.ndarray], labels: np.ndarray, margin: float) -> str:
    """The incumbent, unless another's F1 beats it by more than margin standard errors (the best such one).

    The standard error is that of the per-row difference in correct answers against the incumbent.
    """
    # The best of several noisy F1s on a few hundred rows is mostly luck (the winner's curse): on
    # the real sample's 15 folds (3 seeds), serving the best out-of-fold F1 gave 0.573, the equal
    # average of text and baseline 0.590, both members 0.582 and 0.579.
    predicted = {name: probabilities.argmax(1) for name, probabilities in scored.items()}
    f1 = {name: weighted_f1(labels, answers) for name, answers in predicted.items()}
    correct = predicted[incumbent] == labels

    def clear_gain(name: str) -> bool:
        gain = (predicted[name] == labels).astype(float) - correct
        standard_error = gain.std(ddof=1) / np.sqrt(len(labels)) if len(labels) > 1 else 0.0
        return f1[name] - f1[incumbent] > margin * standard_error

    return max((name for name in scored if clear_gain(name)), key=f1.get, default=incumbent)


def fit_fusion(params: dict, probs: dict[str, np.ndarray], labels: np.ndarray, folds: np.ndarray,
               validation: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Fit the fusion on out-of-fold member probabilities; serve the best single member when no fusion beats it.

    probs are the members' out-of-fold probabilities of the train + validation rows, folds the
    split's folds, validation which rows are validation rows. Fusions of the cross-fitted members
    are fitted and compared (with the best member) on every row; fusions that also use a member
    scored on validation rows only (the image model) on the validation rows, against that winner.
    Every comparison is out of fold. Returns the fusion and its out-of-fold probabilities (NaN
    outside the rows it was fitted on).
    """
    informative = informative_members(probs, labels)
    uninformative, probs = sorted(set(probs) - set(informative)), informative
    if validation is not None and not full_coverage_members(probs):
        # No member is cross-fitted (text models other than tfidf): fit and choose on validation rows.
        return validation_rows_fusion(params, probs, labels, folds, validation)
    member_f1 = {name: weighted_f1(labels, np.nan_to_num(p, nan=-1.0).argmax(1)) for name, p in probs.items()}
    if not full_coverage_members(probs):
        raise ValueError(f"train_fusion.members {list(probs)}: none scores every row (add a text model)")
    best = max(full_coverage_members(probs), key=member_f1.get)
    everywhere = cross_fitted_members(probs, validation)
    every_row = np.ones(len(labels), dtype=bool)
    candidates = out_of_fold_candidates(params, probs, labels, folds, everywhere, every_row, best)
    cv_f1 = {name: weighted_f1(labels, c[3].argmax(1)) for name, c in candidates.items()}
    scored = {**{name: c[3] for name, c in candidates.items()}, best: probs[best]}
    # auto starts from the equal average of the cross-fitted members (nothing fitted) and serves
    # another candidate only on a clear out-of-fold gain; a tie serves the member over a fusion
    # set in params (the same answers for less work per request).
    auto, equal = params["method"] == "auto", f"{'+'.join(everywhere)}/weighted/equal"
    margin = params["selection_margin"] if auto else 0.0
    winner = significant_winner(equal if auto and len(everywhere) > 1 else best, scored, labels, margin)
    chosen, winner_probs = (winner if winner != best else max(cv_f1, key=cv_f1.get)), scored[winner]
    selection = {"member_f1_weighted": member_f1, "best_member": best, "candidates_cv_f1_weighted": cv_f1,
                 "uninformative_members": uninformative}
    if len(everywhere) < len(probs):
        later = out_of_fold_candidates(params, probs, labels, folds, list(probs), validation, best)
        later_f1 = {name: weighted_f1(labels[validation], c[3].argmax(1)) for name, c in later.items()}
        selection["validation_rows_f1_weighted"] = {**later_f1, winner: weighted_f1(
            labels[validation], winner_probs[validation].argmax(1))}
        on_validation = {**{name: c[3] for name, c in later.items()}, winner: winner_probs[validation]}
        challenger = significant_winner(winner, on_validation, labels[validation], margin)
        if challenger != winner:
            winner = chosen = challenger
            candidates, cv_f1 = later, later_f1
            winner_probs = np.full((len(labels), later[chosen][3].shape[1]), np.nan, dtype=np.float32)
            winner_probs[validation] = later[chosen][3]
    settings, members, rows, _ = candidates[chosen]
    selection.update(fusion_cv_f1_weighted=cv_f1[chosen], method_fitted=describe(settings), members_fitted=members,
                     fitted_rows=int(rows.sum()), served=winner)
    if winner == best:
        return {"method": "member", "member": best, "classes": list(CODES), "selection": selection}, winner_probs
    fusion = fit_method(settings, {name: probs[name][rows] for name in members}, labels[rows], best)
    return {**fusion, "classes": list(CODES), "selection": selection}, winner_probs
