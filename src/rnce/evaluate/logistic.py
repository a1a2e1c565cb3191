"""Penalised logistic regression by Newton's method, shared by the probes (:mod:`rnce.evaluate.probes`) and
their penalty tuning (:mod:`rnce.evaluate.tuning`): the fit on all subjects, many masked fits at once, and
the exact Hessians a slow fit switches to."""

from __future__ import annotations

import numpy as np
from scipy.special import expit


class ProbeError(ValueError):
    """Features or labels a probe cannot be fitted on."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def logistic_full(D: np.ndarray, y: np.ndarray, l2: float, tol: float) -> np.ndarray:
    """Newton's method on all subjects (penalty l2 on the standardised coefficients), its steps halved
    until the objective falls (a weak penalty on nearly separable classes makes plain Newton overshoot)."""
    q = D.shape[1]
    pen = np.r_[0.0, np.full(q - 1, l2)]
    ones = np.ones((len(D), 1))
    v = np.zeros(q)
    obj = objective((D @ v)[:, None], y, ones, v[:, None], pen[None])[0]
    for _ in range(100):
        p = expit(D @ v)
        grad = D.T @ (y - p) - pen * v
        if np.abs(grad).max() < tol:
            break
        H = D.T @ (D * (p * (1 - p))[:, None]) + np.diag(pen)
        step = np.linalg.lstsq(H, grad, rcond=None)[0]
        for _ in range(30):
            trial = v + step
            obj_trial = objective((D @ trial)[:, None], y, ones, trial[:, None], pen[None])[0]
            if obj_trial <= obj + 1e-12 * abs(obj):
                break
            step = step / 2
        v, obj = trial, obj_trial
    return v


def objective(eta: np.ndarray, y: np.ndarray, mask: np.ndarray, V: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    loss = np.logaddexp(0, eta) - y[:, None] * eta
    return (loss * mask).sum(axis=0) + 0.5 * (penalty.T * V ** 2).sum(axis=0)


def newton(D: np.ndarray, y: np.ndarray, mask: np.ndarray, V: np.ndarray, penalty: np.ndarray,
            Hinv: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Penalised logistic fits (columns of ``V``, updated in place) on the rows ``mask`` (n x fits) selects.

    Steps are ``Hinv @ gradient`` (an approximate inverse Hessian per fit), halved until the
    objective falls; a fit whose gradient does not halve gets its exact Hessian at the current
    point. A fit still moving after ``max_iter`` steps is an error.
    """
    n_fit = V.shape[1]
    eta = D @ V
    obj = objective(eta, y, mask, V, penalty)
    previous = np.full(n_fit, np.inf)
    scale = tol * max(1.0, float(len(D)))
    for _ in range(max_iter):
        G = D.T @ (mask * (y[:, None] - expit(eta))) - penalty.T * V
        size = np.abs(G).max(axis=0)
        active = np.flatnonzero(size > scale)
        if not len(active):
            return V
        exact_hessians(D, mask, eta, penalty, Hinv, active[size[active] > 0.5 * previous[active]])
        previous[active] = size[active]
        step = np.einsum("bqr,rb->qb", Hinv[active], G[:, active])
        t = np.ones(len(active))
        for _ in range(30):
            trial = V[:, active] + step * t
            eta_trial = D @ trial
            obj_trial = objective(eta_trial, y, mask[:, active], trial, penalty[active])
            worse = obj_trial > obj[active] + 1e-12 * np.abs(obj[active])
            if not worse.any():
                break
            t[worse] *= 0.5
        V[:, active], eta[:, active], obj[active] = trial, eta_trial, obj_trial
    raise ProbeError(f"logistic fits did not converge in {max_iter} iterations ({len(active)} of {n_fit})")


def exact_hessians(D: np.ndarray, mask: np.ndarray, eta: np.ndarray, penalty: np.ndarray, Hinv: np.ndarray,
                   fits: np.ndarray) -> None:
    """Replace the approximate inverse Hessians ``Hinv`` of ``fits`` by the exact ones at their current
    linear predictors ``eta`` (for fits whose approximate Newton steps converge too slowly)."""
    for b in fits:
        w = mask[:, b] * expit(eta[:, b]) * expit(-eta[:, b])
        Hb = D.T @ (D * w[:, None])
        Hb[np.diag_indices_from(Hb)] += penalty[b]
        Hinv[b] = np.linalg.inv(Hb)
