"""Pretraining-only criteria: how a contrastive method's models do on the pretrain subjects they never
trained on (the held-out share of ``ssl.validation_fraction``), the yardstick for choosing SSL settings
(learning rate, auxiliary weight, epochs) without touching the evaluation cohort or its labels.

Per box (stage 1) and for the image embedding (stage 2):

- ``auxiliary_r2``: the mean R^2 over the box's auxiliary columns (all of them for the embedding) on the
  held-out images, of a ridge read of the representation fitted on the training images (penalty by exact
  leave-one-out on them): how much of A the representation carries on new images of the same population;
- ``nce_top1``: instance discrimination on the held-out images, in batches of the training batch size: the
  share of the 2B views whose most similar other view (cosine) is the other view of the same image. Stage 1:
  two augmented views of the box, as in training; stage 2: the aggregator's outputs for a random half of the
  boxes and for the other half. Measured on what the method's NCE term compares: the representations for
  SimCLR and Barlow Twins, R-NCE's residuals R' = H - P_A[H] (eq. 2, each view against its own auxiliary
  columns, in each batch) for R-NCE. On the raw H, R-NCE's two stage-2 views differ by design (each fits the
  auxiliary features of its own boxes), so a raw top-1 near 0 would say nothing about its NCE term.

Output: method, representation (stage1, embedding), box (``all`` for the embedding), metric, value, n_images.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import torch

from rnce.io import write_tsv
from rnce.ssl.data import ID_COLUMNS, Images, key_seed, validation_mask
from rnce.ssl.diagnostics import _loo_ridge
from rnce.ssl.embed import image_representations
from rnce.ssl.losses import rnce_residuals
from rnce.ssl.tasks import box_representations, box_split, load_encoder, standardise

log = logging.getLogger(__name__)
COLUMNS = ["method", "representation", "box", "metric", "value", "n_images"]


def held_out_r2(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Mean over the columns of ``y`` of the held-out R^2 of a ridge read fitted on the fit rows."""
    mx, sx = x_fit.mean(0), x_fit.std(0)
    sx[sx == 0] = 1.0
    my = y_fit.mean(0)
    xt, yt = (x_fit - mx) / sx, y_fit - my
    l2 = _loo_ridge(xt, yt)
    coef = np.linalg.solve(xt.T @ xt + l2 * np.eye(xt.shape[1]), xt.T @ yt)
    predicted = ((x_test - mx) / sx) @ coef + my
    total = ((y_test - y_test.mean(0)) ** 2).sum(0)
    return float(np.nanmean(1 - ((y_test - predicted) ** 2).sum(0) / np.where(total > 0, total, np.nan)))


def top1(z1: torch.Tensor, z2: torch.Tensor, batch: int, aux1: torch.Tensor | None = None,
         aux2: torch.Tensor | None = None) -> float:
    """Share of the 2B views whose nearest other view (cosine) is their positive, in batches of ``batch``;
    with ``aux1``/``aux2`` (R-NCE: each view's auxiliary rows), of the residuals R' of eq. 2 in each batch."""
    hits = total = 0
    for s in range(0, len(z1) - batch + 1, batch):
        v1, v2 = z1[s:s + batch].float(), z2[s:s + batch].float()
        if aux1 is not None:
            v1 = rnce_residuals(v1, aux1[s:s + batch].float())[1]
            v2 = rnce_residuals(v2, aux2[s:s + batch].float())[1]
        z = torch.nn.functional.normalize(torch.cat([v1, v2]), dim=1)
        sim = (z @ z.T).fill_diagonal_(-float("inf"))
        n = len(z) // 2
        positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
        hits += int((sim.argmax(1) == positive).sum())
        total += len(z)
    return hits / total if total else float("nan")


@torch.no_grad()
def _view_reps(images: Images, box: str, encoder_path: str, settings: dict, seed: int, device) -> tuple:
    """Two augmented views of every image's ``box`` through its encoder, made by the training's backend."""
    from rnce.ssl.augment import augment, backend_of, patch_transform
    from rnce.ssl.batch_augment import BatchAugment

    encoder = load_encoder(encoder_path, device)
    batch, views = 64, ([], [])
    if backend_of(settings.get("augment")) == "batched":
        augmenter = BatchAugment(settings.get("augment"), settings.get("voxel_mm", 1.0))
        for s in range(0, len(images), batch):
            rows = list(range(s, min(s + batch, len(images))))
            patches = torch.from_numpy(images.batch(rows, box)).to(device)
            labels = torch.from_numpy(np.stack([images.read_labels(i, box) for i in rows])).to(device)
            generator = torch.Generator(device=device).manual_seed(key_seed(seed, "validation", s))
            for v in views:
                v.append(encoder(augmenter(patches, labels, generator)).float().cpu())
        return tuple(torch.cat(v) for v in views)
    transform = patch_transform(settings.get("augment"), settings.get("voxel_mm", 1.0))
    for i in range(len(images)):
        patch, labels = images.read(i, box), images.read_labels(i, box)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(key_seed(seed, "validation", i))
            for v in views:
                v.append(augment(patch, labels, transform))
    return tuple(torch.cat([encoder(torch.stack(v[s:s + batch]).to(device)).float().cpu()
                            for s in range(0, len(v), batch)]) for v in views)


def validation(method: str, patch_root: str, cohorts: list[str], encoders: dict[str, str], aggregator: str,
               auxiliary: str, auxiliary_boxes: str, encoder_settings: dict, aggregator_settings: dict,
               out_path: str, threads: int = 1) -> pd.DataFrame:
    """Write the table of the module docstring for one contrastive ``method``."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fraction = encoder_settings.get("validation_fraction", 0.0)
    images = Images(patch_root, cohorts)
    held = validation_mask(images.table, fraction)
    if held.sum() < 10:
        raise ValueError(f"ssl.validation_fraction {fraction} holds out {int(held.sum())} of the {len(held)} pretrain "
                         "images; the validation criteria need at least 10")
    aux = pd.read_csv(auxiliary, sep="\t", dtype={"participant_id": str, "session_id": str})
    aux = images.table[ID_COLUMNS].astype(str).merge(aux, on=ID_COLUMNS, how="left")
    boxes = json.loads(open(auxiliary_boxes).read())["boxes"]
    columns = sorted({c for cols in boxes.values() for c in cols})
    missing = [c for c in columns if c not in aux.columns] + [b for b in encoders if b not in boxes]
    if missing:
        raise ValueError(f"{auxiliary}: no column(s) or box(es) {missing[:5]} (listed in {auxiliary_boxes} or among "
                         "the encoders)")
    has_aux = aux[columns].notna().all(axis=1).to_numpy()
    fit, test = ~held & has_aux, held & has_aux
    n_test = int(held.sum())
    reps = box_representations(images, encoders, device).numpy()
    rows = []
    held_images = images.subset(held)
    seed = encoder_settings["seed"]
    for b, box in enumerate(encoders):
        y = aux[boxes[box]].to_numpy(float)
        rows.append([method, "stage1", box, "auxiliary_r2", held_out_r2(reps[fit, b], y[fit], reps[test, b], y[test]),
                     int(test.sum())])
        z1, z2 = _view_reps(held_images, box, encoders[box], encoder_settings, seed, device)
        batch = min(encoder_settings["train"]["batch_size"], n_test)
        box_aux = torch.from_numpy(np.nan_to_num(y[held])) if method == "rnce" else None  # missing: the mean
        rows.append([method, "stage1", box, "nce_top1", top1(z1, z2, batch, box_aux, box_aux), n_test])
    embedding = image_representations(method, images, encoders, aggregator, device, box_reps=torch.from_numpy(reps))
    y = aux[columns].to_numpy(float)
    rows.append([method, "embedding", "all", "auxiliary_r2", held_out_r2(embedding[fit], y[fit], embedding[test],
                                                                         y[test]), int(test.sum())])
    batch = min(aggregator_settings["train"]["batch_size"], n_test)
    columns_of = {box: [columns.index(c) for c in boxes[box]] for box in encoders} if method == "rnce" else None
    rows.append([method, "embedding", "all", "nce_top1",
                 _embedding_top1(aggregator, reps[held], list(encoders), seed, batch, device,
                                 torch.from_numpy(np.nan_to_num(y[held])) if method == "rnce" else None, columns_of),
                 n_test])
    table = pd.DataFrame(rows, columns=COLUMNS).round({"value": 4})
    write_tsv(table, out_path)
    log.info("%s on %d held-out pretrain images: embedding auxiliary R^2 %.3f, NCE top-1 %.3f", method, n_test,
             table["value"].iat[-2], table["value"].iat[-1])
    return table


@torch.no_grad()
def _embedding_top1(aggregator_path: str, box_reps: np.ndarray, box_order: list[str], seed: int, batch: int,
                    device, aux: torch.Tensor | None = None, columns_of: dict | None = None) -> float:
    """Stage 2's :func:`top1`: the aggregator's outputs for a random half of the boxes against the other half
    (``box_reps``: images x boxes x dim in ``box_order``; R-NCE: ``aux`` the images' auxiliary rows and
    ``columns_of`` each box's columns in it, each view's residual taken against its boxes' columns)."""
    from rnce.ssl.models import Aggregator

    saved = torch.load(aggregator_path, map_location="cpu", weights_only=True)
    m = saved["model"]
    model = Aggregator(len(saved["box_names"]), m["rep_dim"], m["aggregator_depth"], m["aggregator_heads"])
    model.load_state_dict(saved["state_dict"])
    model.to(device).eval()
    order = [box_order.index(b) for b in saved["box_names"]]
    reps, _, _ = standardise(torch.from_numpy(box_reps[:, order]), saved["rep_mean"], saved["rep_sd"])
    first, second = box_split(len(saved["box_names"]), key_seed(seed, "validation"))
    z1 = model(reps[:, first].to(device), first.to(device)).float().cpu()
    z2 = model(reps[:, second].to(device), second.to(device)).float().cpu()
    if aux is None:
        return top1(z1, z2, batch)
    names = saved["box_names"]

    def view_aux(half: torch.Tensor) -> torch.Tensor:
        return aux[:, sorted({c for b in half.tolist() for c in columns_of[names[b]]})]

    return top1(z1, z2, batch, view_aux(first), view_aux(second))
