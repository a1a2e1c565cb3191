"""Linear probes with leave-``n_holdout``-out bootstrap scores, and the paired permutation test.

Every bootstrap sample leaves ``n_holdout`` subjects out, fits on the rest and
scores the subjects left out: AUROC for ``classification`` (logistic
regression), R^2 for ``regression`` (ridge). Features are standardised with the
training part's mean and SD (population SD, as scikit-learn's StandardScaler),
and the L2 penalty applies to the standardised coefficients, never to the
intercept; ``l2`` is scikit-learn's ``1 / C`` (LogisticRegression) and ``alpha``
(Ridge). Classification holdouts are stratified: each keeps the task's class
proportions, so every one has both classes.

The fits give scikit-learn's answers, but all bootstrap samples are solved
together: the features are standardised once over all subjects, and a
training part's own standardisation becomes a per-sample penalty weight (the
training variance of each feature), which is the same model. Ridge then is one
batched linear solve on the full Gram matrix minus the held-out rows'. The
logistic fits start from the fit on all subjects and take Newton steps with
that fit's Hessian minus the held-out rows' (one inverse per sample); a sample
whose gradient does not halve gets its exact Hessian, and a step that does not
lower the objective is halved, so every fit runs to a tight optimum
(``tol``, far below scikit-learn's default).

BLAS runs single-threaded inside a fit: OpenBLAS threads on thousands of
65 x 65 solves made them 100x slower here; run feature sets or tasks in
parallel processes instead.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from threadpoolctl import threadpool_limits

from rnce.evaluate.logistic import ProbeError, logistic_full, newton
from rnce.evaluate.tuning import DEFAULT_GRID, select_l2

TASK_KINDS = ("classification", "regression")


def _check(X: np.ndarray, y: np.ndarray, task: str, n_holdout: int) -> tuple[np.ndarray, np.ndarray]:
    if task not in TASK_KINDS:
        raise ProbeError(f"task must be one of {TASK_KINDS}, not {task!r}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ProbeError(f"X must be (subjects, features) and y (subjects,); got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        rows, cols = np.nonzero(~np.isfinite(X))
        raise ProbeError(f"features are NaN or infinite in {len(set(rows))} subject(s) (first: row {rows[0]}, "
                         f"column {cols[0]})")
    if not np.isfinite(y).all():
        raise ProbeError(f"labels are NaN or infinite for {int((~np.isfinite(y)).sum())} subject(s)")
    if task == "classification" and not np.isin(y, (0, 1)).all():
        raise ProbeError("classification labels must be 0 or 1")
    if not 0 < n_holdout < len(y):
        raise ProbeError(f"n_holdout must be between 1 and the number of subjects - 1 ({len(y) - 1}), "
                         f"not {n_holdout}")
    return X, y


def holdout_indices(y: np.ndarray, task: str, n_boot: int, n_holdout: int, seed: int) -> np.ndarray:
    """(n_boot, n_holdout) subject indices left out by each bootstrap sample (stratified for classification)."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        return np.argsort(rng.random((n_boot, len(y))), axis=1)[:, :n_holdout]
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k_pos = int(round(n_holdout * len(positives) / len(y)))
    k_pos = min(max(k_pos, 1), len(positives) - 1, n_holdout - 1)
    if k_pos < 1 or n_holdout - k_pos > len(negatives) - 1:
        raise ProbeError(f"{len(positives)} positive and {len(negatives)} negative subjects cannot give a holdout "
                         f"of {n_holdout} with both classes in it and in the training part")
    pick_pos = np.argsort(rng.random((n_boot, len(positives))), axis=1)[:, :k_pos]
    pick_neg = np.argsort(rng.random((n_boot, len(negatives))), axis=1)[:, :n_holdout - k_pos]
    return np.concatenate([positives[pick_pos], negatives[pick_neg]], axis=1)


def _design(X: np.ndarray) -> np.ndarray:
    """[1, globally standardised X] without constant columns (they carry nothing for any fit)."""
    sd = X.std(axis=0)
    keep = sd > 0
    Z = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    return np.hstack([np.ones((len(X), 1)), Z])


def _penalty_weights(D: np.ndarray, hold: np.ndarray, l2: float) -> np.ndarray:
    """(n_boot, q) penalty of each coefficient: l2 x the training part's variance (0 for the intercept)."""
    n, k = len(D), hold.shape[1]
    Dh = D[hold][:, :, 1:]
    total, total_sq = D[:, 1:].sum(axis=0), (D[:, 1:] ** 2).sum(axis=0)
    mean = (total - Dh.sum(axis=1)) / (n - k)
    var = (total_sq - (Dh ** 2).sum(axis=1)) / (n - k) - mean ** 2
    var = np.where(var > 1e-12, var, 1.0)  # StandardScaler's scale 1 for a constant feature
    return np.hstack([np.zeros((len(hold), 1)), l2 * var])


def _downdated(D: np.ndarray, weights: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """(n_boot, q, q): D' diag(w) D over each bootstrap sample's training part."""
    full = D.T @ (D * weights[:, None])
    Dh = D[hold]
    return full[None] - np.matmul(Dh.transpose(0, 2, 1), Dh * weights[hold][:, :, None])


def _ridge(D: np.ndarray, y: np.ndarray, hold: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """(q, n_boot) ridge coefficients of each training part."""
    A = _downdated(D, np.ones(len(D)), hold)
    A[:, np.arange(D.shape[1]), np.arange(D.shape[1])] += penalty
    b = D.T @ y - np.einsum("bkq,bk->bq", D[hold], y[hold])
    return np.linalg.solve(A, b[:, :, None])[:, :, 0].T


def _logistic(D: np.ndarray, y: np.ndarray, hold: np.ndarray, penalty: np.ndarray, l2: float,
              tol: float = 1e-8, max_iter: int = 200) -> np.ndarray:
    """(q, n_boot) penalised logistic coefficients of each training part (``penalty``: l2 x weights)."""
    n_boot = len(hold)
    mask = np.ones((len(D), n_boot))
    mask[hold, np.arange(n_boot)[:, None]] = 0.0
    v0 = logistic_full(D, y, l2, tol)
    p0 = expit(D @ v0)
    H = _downdated(D, p0 * (1 - p0), hold)
    H[:, np.arange(D.shape[1]), np.arange(D.shape[1])] += penalty
    V = np.repeat(v0[:, None], n_boot, axis=1)
    return newton(D, y, mask, V, penalty, np.linalg.inv(H), tol, max_iter)


def auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row-wise AUROC of (n_boot, k) scores against 0/1 labels (ties count one half)."""
    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    return ((ranks * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def r_squared(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Row-wise R^2 (scikit-learn's r2_score: the held-out part's own mean)."""
    residual = ((truth - predicted) ** 2).sum(axis=1)
    total = ((truth - truth.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return 1 - residual / total


def bootstrap_fit(X, y, task: str, n_boot: int = 1000, n_holdout: int = 100, seed: int = 0,
                  l2: float | str = "auto", grid=None, n_folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ``n_boot`` probes, each fitted on all but ``n_holdout`` subjects and scored on those left out,
    and the L2 penalty of each.

    X: (subjects, features); y: (subjects,), 0/1 for classification. ``l2``: a number, or ``"auto"``: chosen
    inside every bootstrap sample by an inner ``n_folds``-fold cross-validation over ``grid`` (default
    1e-4 ... 1e4, see :mod:`rnce.evaluate.tuning`). Returns (n_boot,) AUROC (classification) or R^2
    (regression), and (n_boot,) penalties. The holdouts depend only on ``y``, ``task``, ``n_boot``,
    ``n_holdout`` and ``seed``, so two feature sets of the same subjects in the same order get paired scores.
    """
    X, y = _check(X, y, task, n_holdout)
    hold = holdout_indices(y, task, n_boot, n_holdout, seed)
    D = _design(X)
    weights = _penalty_weights(D, hold, 1.0)
    with threadpool_limits(limits=1, user_api="blas"):  # many small solves: threads only cost (see module doc)
        if l2 == "auto":
            chosen = select_l2(D, y, hold, weights, task, DEFAULT_GRID if grid is None else grid, n_folds, seed)
        elif isinstance(l2, int | float) and not isinstance(l2, bool) and l2 > 0:
            chosen = np.full(n_boot, float(l2))
        else:
            raise ProbeError(f"l2 must be a positive number or 'auto', not {l2!r}")
        penalty = weights * chosen[:, None]
        if task == "regression":
            V = _ridge(D, y, hold, penalty)
        else:
            V = np.empty((D.shape[1], n_boot))
            for value in np.unique(chosen):  # the refits start from the full-data fit at their own penalty
                group = np.flatnonzero(chosen == value)
                V[:, group] = _logistic(D, y, hold[group], penalty[group], float(value))
    predicted = np.einsum("bkq,qb->bk", D[hold], V)
    scores = r_squared(predicted, y[hold]) if task == "regression" else auroc(predicted, y[hold])
    return scores, chosen


def bootstrap_scores(X, y, task: str, n_boot: int = 1000, n_holdout: int = 100, seed: int = 0,
                     l2: float | str = "auto", grid=None, n_folds: int = 5) -> np.ndarray:
    """The scores of :func:`bootstrap_fit` alone."""
    return bootstrap_fit(X, y, task, n_boot, n_holdout, seed, l2, grid, n_folds)[0]


def permutation_pvalue(scores_a, scores_b, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided paired permutation test of mean(scores_a - scores_b) = 0.

    Each permutation swaps the two feature sets' scores of a random subset of
    the bootstrap samples (a random sign for each paired difference). Returns
    (1 + permutations at least as extreme) / (1 + n_perm).
    """
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ProbeError(f"paired scores must be two 1-d arrays of one length; got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ProbeError("paired scores hold NaN or infinite values")
    d = a - b
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    extreme, done, chunk = 0, 0, max(1, 2_000_000 // len(d))
    while done < n_perm:
        m = min(chunk, n_perm - done)
        signs = rng.integers(0, 2, size=(m, len(d)), dtype=np.int8) * 2.0 - 1.0
        extreme += int((np.abs(signs @ d) / len(d) >= observed - 1e-12 * max(observed, 1.0)).sum())
        done += m
    return (1 + extreme) / (1 + n_perm)
