"""The probes' L2 penalty chosen by the data: an inner cross-validation inside every bootstrap sample.

Inside bootstrap sample ``b`` (the subjects it does not hold out), the
training part is cut into ``n_folds`` folds (stratified by class for a
classification task, keyed by ``seed``); every penalty of the grid is fitted
on each fold's complement and scored on the fold: R^2 (ridge) or minus the
mean log loss (logistic), averaged over the folds. The best penalty (the
first of the grid on a tie) is then refitted on the whole training part. The
features are standardised once per bootstrap sample, with its training part's
mean and SD, for the inner fits and the refit alike: the result equals
scikit-learn's ``RidgeCV(alphas=grid, cv=folds)`` or
``LogisticRegressionCV(Cs=1 / grid, cv=folds, scoring="neg_log_loss")`` on
``StandardScaler().fit_transform(X[train])``.

All inner fits of many bootstrap samples are solved together. Ridge works on
q x q sums only: each fold's Gram matrix and cross-products, the training
part's as their sum, a fit's as that minus its fold's; one batched solve per
penalty, and the validation residuals from the same sums. The logistic fits
(a 0/1 mask over all subjects selects each one's rows) take preconditioned
Newton steps together, penalty by penalty from the strongest, each starting
where the previous penalty ended: the preconditioner is the Hessian of the
fit on all subjects at that penalty, scaled to the training size; a fit that
does not converge fast gets its exact Hessian, and a step is checked by the
secant test on the gradient it needs next anyway (:func:`_newton_secant`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from rnce.evaluate.logistic import ProbeError, exact_hessians, logistic_full

DEFAULT_GRID = tuple(10.0 ** k for k in range(-4, 5))  # 1e-4 ... 1e4
CHUNK_BYTES = 64 * 2**20  # per block of inner fits: their (q x q) matrices, or their subjects x fits arrays
RIDGE_BLOCK_BYTES = 8 * 2**20  # ridge's blocks of (q x q) systems: small enough to stay in cache


def l2_grid(grid) -> np.ndarray:
    values = np.asarray(grid, dtype=np.float64)
    if values.ndim != 1 or not len(values) or not (np.isfinite(values).all() and (values > 0).all()):
        raise ProbeError(f"the L2 grid must be a non-empty list of positive numbers, not {list(grid)!r}")
    return values


def inner_folds(y: np.ndarray, hold: np.ndarray, task: str, n_folds: int, seed: int) -> np.ndarray:
    """(n_boot, n) fold of every subject in every bootstrap sample: -1 held out, else 0 .. folds - 1.

    Classification folds keep the class proportions (each gets every class); the number of folds
    is capped by the smaller class of the training part."""
    n_boot, n = len(hold), len(y)
    train = np.ones((n_boot, n), dtype=bool)
    train[np.arange(n_boot)[:, None], hold] = False
    n_train = n - hold.shape[1]
    if task == "classification":
        n_pos = int(y[train[0]].sum())
        n_folds = min(n_folds, n_pos, n_train - n_pos)
    if n_folds < 2:
        raise ProbeError(f"an inner cross-validation needs 2 folds (with both classes in each); the training part "
                         f"of {n_train} subjects allows {n_folds}")
    keys = np.random.default_rng([seed, 7919]).random((n_boot, n))
    if task == "classification":
        keys = keys + 2.0 * y[None, :]  # class by class, in random order within a class
    keys[~train] = np.inf
    order = np.argsort(keys, axis=1)[:, :n_train]
    folds = np.full((n_boot, n), -1, dtype=np.int64)
    np.put_along_axis(folds, order, np.arange(n_train)[None, :] % n_folds, axis=1)
    return folds


def _chunk(n: int, q: int, fits_per_sample: int) -> int:
    """Bootstrap samples per block, so that a block's arrays stay near CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (8 * fits_per_sample * max(n, q * q)))


def _fit_masks(folds: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Training and validation masks (n_boot * K, n) of every inner fit, bootstrap-major."""
    k = int(folds.max()) + 1
    fold_ids = np.arange(k)[None, :, None]
    valid = folds[:, None, :] == fold_ids
    train = (folds[:, None, :] >= 0) & ~valid
    return train.reshape(-1, folds.shape[1]).astype(np.float64), valid.reshape(-1, folds.shape[1]), k


def _fold_rows(folds: np.ndarray, n: int) -> np.ndarray:
    """(n_boot, K, S) row indices of every inner fold, padded with ``n`` (a zero row) to the largest
    fold's size S (fold sizes are the same in every bootstrap sample)."""
    k = int(folds.max()) + 1
    sizes = np.bincount(folds[0][folds[0] >= 0], minlength=k)
    n_hold = int((folds[0] < 0).sum())
    order = np.argsort(folds, axis=1, kind="stable")[:, n_hold:]  # training rows, fold by fold
    width = int(sizes.max())
    real = np.arange(width)[None, :] < sizes[:, None]
    position = np.where(real, np.r_[0, np.cumsum(sizes)[:-1]][:, None] + np.arange(width)[None, :], 0)
    return np.where(real[None], order[:, position], n)


def rows_per_fold(folds: np.ndarray) -> int:
    return int(np.bincount(folds[0][folds[0] >= 0]).max())


def _ridge_scores(D: np.ndarray, y: np.ndarray, folds: np.ndarray, weights: np.ndarray,
                  grid: np.ndarray) -> np.ndarray:
    """(n_boot, len(grid)) mean validation R^2 over the inner folds.

    Everything is q x q: each fold's Gram G_f, D_f'y, y'y and sum(y); a fit leaves its fold out of the
    training part's sums, and its validation residual is y_f'y_f - 2 b'D_f'y_f + b'G_f b."""
    n, q = D.shape
    Dz, yz = np.vstack([D, np.zeros((1, q))]), np.r_[y, 0.0]
    diag = np.arange(q)
    scores = []
    k = int(folds.max()) + 1
    step = max(1, RIDGE_BLOCK_BYTES // (8 * k * max(q * q, rows_per_fold(folds) * q)))
    for start in range(0, len(folds), step):
        rows = _fold_rows(folds[start:start + step], n)  # (c, K, S)
        Df, yf = Dz[rows], yz[rows]
        gram = np.matmul(Df.transpose(0, 1, 3, 2), Df)  # (c, K, q, q)
        rhs = np.einsum("cksq,cks->ckq", Df, yf)
        yy, sy, nf = (yf ** 2).sum(axis=2), yf.sum(axis=2), (rows < n).sum(axis=2)
        train_gram = gram.sum(axis=1, keepdims=True) - gram
        train_rhs = rhs.sum(axis=1, keepdims=True) - rhs
        coef = np.empty((*train_rhs.shape[:2], len(grid), q))
        for g, l2 in enumerate(grid):  # one penalty at a time: the block stays in cache
            A = train_gram.copy()
            A[..., diag, diag] += l2 * weights[start:start + step][:, None, :]
            coef[:, :, g] = np.linalg.solve(A, train_rhs[..., None])[..., 0]
        fitted = np.einsum("ckgq,ckq->ckg", coef, rhs)
        quadratic = np.einsum("ckgq,ckqr,ckgr->ckg", coef, gram, coef)
        residual = yy[..., None] - 2 * fitted + quadratic
        total = yy - sy ** 2 / nf
        scores.append((1.0 - residual / total[..., None]).mean(axis=1))
    return np.concatenate(scores)


def _newton_secant(D: np.ndarray, y: np.ndarray, mask: np.ndarray, V: np.ndarray, penalty: np.ndarray,
                   Hinv: np.ndarray, tol: float, max_iter: int, slow: float = 0.9) -> np.ndarray:
    """The inner fits' Newton steps (``V`` updated in place and returned), cheaper than :func:`rnce.evaluate.probes.newton`: a step is kept
    when the objective's slope along it at the new point is below minus its slope at the start (the
    secant test, exact for a quadratic), which needs only the new point's gradient, itself the next
    step's; so no log-loss is evaluated. A fit that has not converged after ``max_iter`` steps is
    kept as it is (these fits only rank the penalties)."""
    eta = D @ V
    G = D.T @ (mask * (y[:, None] - expit(eta))) - penalty.T * V
    previous = np.full(V.shape[1], np.inf)
    scale = tol * max(1.0, float(len(D)))
    for _ in range(max_iter):
        size = np.abs(G).max(axis=0)
        active = np.flatnonzero(size > scale)
        if not len(active):
            break
        exact_hessians(D, mask, eta, penalty, Hinv, active[size[active] > slow * previous[active]])
        previous[active] = size[active]
        step = np.einsum("bqr,rb->qb", Hinv[active], G[:, active])
        t = np.ones(len(active))
        pending = np.arange(len(active))
        for _ in range(30):
            fits = active[pending]
            trial = V[:, fits] + step[:, pending] * t[pending]
            eta_trial = D @ trial
            G_trial = D.T @ (mask[:, fits] * (y[:, None] - expit(eta_trial))) - penalty[fits].T * trial
            ok = ((G_trial + G[:, fits]) * step[:, pending]).sum(axis=0) > 0
            keep = fits[ok]
            V[:, keep], eta[:, keep], G[:, keep] = trial[:, ok], eta_trial[:, ok], G_trial[:, ok]
            pending = pending[~ok]
            if not len(pending):
                break
            t[pending] *= 0.5
    return V


def _logistic_scores(D: np.ndarray, y: np.ndarray, folds: np.ndarray, weights: np.ndarray, grid: np.ndarray,
                     tol: float, max_iter: int) -> np.ndarray:
    """(n_boot, len(grid)) minus the mean validation log loss over the inner folds.

    The penalties are fitted from the strongest to the weakest, each inner fit starting where it
    ended at the previous penalty (the first from zero): a start that has never seen the fit's
    validation fold, so a fit that converges slowly (weak penalty, nearly separable classes) cannot
    look better than it is. The preconditioner of each penalty is the Hessian of the fit on all
    subjects, scaled to an inner training part (it only sets the speed, not the answer)."""
    n, q = D.shape
    n_train = int((folds[0] >= 0).sum())
    k = int(folds.max()) + 1
    fraction = n_train * (k - 1) / k / n
    mean_w = weights.mean(axis=0)
    precond = []
    for l2 in grid:
        p = expit(D @ logistic_full(D, y, l2, tol))
        precond.append(np.linalg.pinv(fraction * (D.T @ (D * (p * (1 - p))[:, None])) + np.diag(l2 * mean_w)))
    scores = []
    step = _chunk(n, q, k)
    for start in range(0, len(folds), step):
        train, valid, _ = _fit_masks(folds[start:start + step])
        m = len(train)
        w = np.repeat(weights[start:start + step], k, axis=0)
        mask = train.T
        V = np.zeros((q, m))
        block = np.empty((m, len(grid)))
        for g in np.argsort(-grid, kind="stable"):
            V = _newton_secant(D, y, mask, V, w * grid[g], np.repeat(precond[g][None], m, axis=0), tol,
                               max_iter)
            eta = D @ V
            loss = np.logaddexp(0, eta) - y[:, None] * eta  # n x fits
            block[:, g] = (loss * valid.T).sum(axis=0) / valid.sum(axis=1)
        scores.append(-block.reshape(-1, k, len(grid)).mean(axis=1))
    return np.concatenate(scores)


def select_l2(D: np.ndarray, y: np.ndarray, hold: np.ndarray, weights: np.ndarray, task: str, grid,
              n_folds: int = 5, seed: int = 0, tol: float = 1e-5, max_iter: int = 100) -> np.ndarray:
    """The L2 penalty of every bootstrap sample (n_boot,), chosen by inner cross-validation.

    ``D``: [1, globally standardised X]; ``hold``: (n_boot, n_holdout); ``weights``: (n_boot, q) each
    coefficient's penalty weight at l2 = 1 (its training part's variance, 0 for the intercept)."""
    grid = l2_grid(grid)
    folds = inner_folds(y, hold, task, n_folds, seed)
    if task == "regression":
        scores = _ridge_scores(D, y, folds, weights, grid)
    else:
        scores = _logistic_scores(D, y, folds, weights, grid, tol, max_iter)
    return grid[np.argmax(scores, axis=1)]
