"""Self-supervised losses (METHOD §5). Pure functions of tensors; B is the batch size.

Every function checks its arguments' shapes and computes in float32 (autocast
off), so a bf16 forward pass still gets a float32 loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _pair(z1: Tensor, z2: Tensor, name: str) -> tuple[Tensor, Tensor]:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"{name}: the two views must be B x d matrices of one shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError(f"{name}: needs a batch of at least 2, got {z1.shape[0]}")
    return z1.float(), z2.float()


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.1) -> Tensor:
    """NT-Xent / NCE, eq. (1).

    Parameters
    ----------
    z1, z2 : B x d
        The two views' representations; row i of both is image i.
    temperature : float
        tau > 0; similarities are cosine similarities divided by tau.

    Returns
    -------
    Scalar: for each of the 2B anchors, the cross-entropy of picking its other
    view among the 2B - 1 other rows (the 2B - 2 views of the other images are
    the negatives), averaged over the anchors.
    """
    if temperature <= 0:
        raise ValueError(f"nt_xent: temperature must be > 0, got {temperature}")
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = _pair(z1, z2, "nt_xent")
        b = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        logits = z @ z.T / temperature
        self_mask = torch.eye(2 * b, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
        return F.cross_entropy(logits, targets)


def _project(x: Tensor, y: Tensor) -> Tensor:
    """P_X[Y] = X pinv(X) Y, the projection of Y's columns on the column space of X."""
    return x @ (torch.linalg.pinv(x) @ y)


def _ridge_project(x: Tensor, y: Tensor, ridge: float) -> Tensor:
    """X (X'X + lambda I)^-1 X' Y with lambda = ``ridge`` x the mean eigenvalue of X'X (scale-free);
    ``ridge`` 0 is P_X[Y]."""
    if ridge == 0:
        return _project(x, y)
    gram = x.T @ x
    penalty = ridge * torch.diagonal(gram).mean().clamp_min(1e-12)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return x @ torch.linalg.solve(gram + penalty * eye, x.T @ y)


def rnce_residuals(h: Tensor, aux: Tensor, aux_ridge: float = 0.0) -> tuple[Tensor, Tensor]:
    """Eq. (2): R = A - P_H[A] (auxiliary information H misses) and R' = H - P_A[H] (H beyond A).

    ``aux_ridge`` > 0 shrinks the fit of A on H (ridge, penalty ``aux_ridge`` x the mean eigenvalue of
    H'H): with B not much larger than d, the exact projection fits d/B of any A by chance (two thirds at
    B = 96, d = 64), so ||R|| barely tells an H that carries A from one that does not. R' keeps the
    exact projection, so it holds nothing linear of A whatever ``aux_ridge`` is."""
    return aux - _ridge_project(h, aux, aux_ridge), h - _project(aux, h)


def rnce_loss(h1: Tensor, h2: Tensor, aux: Tensor | tuple[Tensor, Tensor], temperature: float = 0.1,
              aux_weight: float = 1.0, aux_ridge: float = 0.0) -> Tensor:
    """R-NCE, eqs. (2)-(3): ``aux_weight * mean_v ||R_v||_F^2 + NT-Xent(R'_1, R'_2)``.

    How the two terms are scaled (a decision; the paper writes ``||R||_F^2 + L_NCE(R')`` and gives no
    batch size): the auxiliary term is eq. (3)'s squared Frobenius norm, a **sum** over the B x k entries
    of R, averaged over the two views; the NCE term is a mean over the 2B anchors. With A z-scored in the
    batch, ``||R||_F^2 = B k (1 - r^2)`` where r^2 is the share of A that H fits, so the auxiliary term
    weighs about ``B k`` times a unit of unexplained auxiliary variance against one nat of NCE: the
    paper's form puts most of the gradient on A, more the larger the batch and the more auxiliary
    columns a box covers. We keep the sum (the paper's equation, and the measured better choice: a mean
    over entries, i.e. ``aux_weight`` 1/(B k), lost the auxiliary features in stage 1 and stage 2,
    docs/study.md round 2), so changing the batch size changes the balance, and ``aux_weight`` is the
    knob that restores it (``aux_weight`` x B is what stays comparable across batch sizes). The price,
    measured in round 3 on held-out pretrain images: with the sum the NCE term barely counts, and R-NCE's
    residuals R' do not tell images apart (top-1 near chance, :mod:`rnce.ssl.validation`).

    Parameters
    ----------
    h1, h2 : B x d
        The two views' representations.
    aux : B x k, or a pair of B x k1 and B x k2
        The batch's z-scored auxiliary features; one matrix for both views, or one
        per view (stage 2: each view's boxes cover their own auxiliary subset).
    temperature : float
        NT-Xent temperature.
    aux_weight : float
        Weight of the auxiliary term.
    aux_ridge : float
        Shrinkage of the fit of A on H in the auxiliary term (:func:`rnce_residuals`); 0 is eq. (2).

    Needs B > d and B > k, otherwise every projection is the identity and both
    terms are trivially zero.
    """
    with torch.autocast(h1.device.type, enabled=False):
        h1, h2 = _pair(h1, h2, "rnce_loss")
        aux1, aux2 = (aux, aux) if isinstance(aux, Tensor) else aux
        b, d = h1.shape
        for a in (aux1, aux2):
            if a.ndim != 2 or a.shape[0] != b:
                raise ValueError(f"rnce_loss: aux must be B x k with B = {b}, got {tuple(a.shape)}")
            if b <= d or b <= a.shape[1]:
                raise ValueError(f"rnce_loss: needs batch size B > d and B > k, got B = {b}, d = {d}, "
                                 f"k = {a.shape[1]}; increase the batch size")
        if aux_ridge < 0:
            raise ValueError(f"rnce_loss: aux_ridge must be >= 0, got {aux_ridge}")
        r1, r1_prime = rnce_residuals(h1, aux1.float(), aux_ridge)
        r2, r2_prime = rnce_residuals(h2, aux2.float(), aux_ridge)
        aux_term = 0.5 * (r1.pow(2).sum() + r2.pow(2).sum())
        return aux_weight * aux_term + nt_xent(r1_prime, r2_prime, temperature)


def barlow_twins(z1: Tensor, z2: Tensor, lambd: float = 5e-3, eps: float = 1e-5) -> Tensor:
    """Barlow Twins: ``sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2``.

    ``c`` (d x d) is the cross-correlation of the two views after standardising
    each dimension over the batch (mean 0, biased variance 1 with ``eps``, as
    ``BatchNorm1d(affine=False)`` does in the reference implementation).
    """
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = _pair(z1, z2, "barlow_twins")
        b = z1.shape[0]
        n1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
        n2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
        c = n1.T @ n2 / b
        diagonal = torch.diagonal(c)
        on = (1 - diagonal).pow(2).sum()
        off = c.pow(2).sum() - diagonal.pow(2).sum()
        return on + lambd * off


def reconstruction(restored: Tensor, target: Tensor) -> Tensor:
    """Models Genesis: mean squared error between the restored and the original image."""
    if restored.shape != target.shape:
        raise ValueError(f"reconstruction: shapes differ, {tuple(restored.shape)} and {tuple(target.shape)}")
    with torch.autocast(restored.device.type, enabled=False):
        return F.mse_loss(restored.float(), target.float())


def lssl_direction(z1: Tensor, z2: Tensor, direction: Tensor) -> Tensor:
    """LSSL's alignment term: ``mean_i (1 - cos(z2_i - z1_i, direction))``.

    ``z1``, ``z2`` (B x d) are the latents of each subject's earlier and later
    visit; ``direction`` (d) is the learned ageing direction.
    """
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = _pair(z1, z2, "lssl_direction")
        if direction.shape != (z1.shape[1],):
            raise ValueError(f"lssl_direction: direction must have shape ({z1.shape[1]},), "
                             f"got {tuple(direction.shape)}")
        cos = F.cosine_similarity(z2 - z1, direction.float().expand_as(z1), dim=1, eps=1e-8)
        return (1 - cos).mean()
