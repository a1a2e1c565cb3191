"""The four kinds of training job, each a model, a dataset and a loss:

- ``encoder``: stage 1, one box's :class:`PatchEncoder` with R-NCE, SimCLR or Barlow Twins;
- ``aggregator``: stage 2, the :class:`Aggregator` on frozen stage-1 representations,
  the two views being a random split of the boxes (each box to S1 or S2 with p 0.5,
  drawn per batch); R-NCE uses, per view, the auxiliary columns its boxes cover;
- ``models_genesis``: a 3D U-Net restoring corrupted whole images;
- ``lssl``: an auto-encoder on pairs of visits whose latent differences align with a learned direction.

A job is a plain dict (see :func:`build`), so it can be written to JSON and
started again by ``torchrun`` in several processes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from rnce.ssl import losses
from rnce.ssl.data import (
    Images,
    Patches,
    PatchViews,
    VisitPairs,
    WholeImages,
    auxiliary,
    key_seed,
    nested_subset,
    validation_mask,
    visit_pairs,
)
from rnce.ssl.models import Aggregator, LSSLAutoEncoder, PatchEncoder, UNet3D

log = logging.getLogger(__name__)
CONTRASTIVE = ("rnce", "simclr", "barlow_twins")
RECONSTRUCTION = ("models_genesis", "lssl")
METHODS = CONTRASTIVE + RECONSTRUCTION


def gather(x: Tensor) -> Tensor:
    """All processes' rows of ``x`` (gradients flow back to each process's own rows)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


def contrastive_loss(method: str, h1: Tensor, h2: Tensor, aux, settings: dict) -> Tensor:
    if method == "simclr":
        return losses.nt_xent(h1, h2, settings["temperature"])
    if method == "barlow_twins":
        return losses.barlow_twins(h1, h2, settings["barlow_lambda"])
    return losses.rnce_loss(h1, h2, aux, settings["temperature"], settings["aux_weight"],
                            settings["aux_ridge"])


def encoder_model(model: dict) -> PatchEncoder:
    return PatchEncoder(tuple(model["encoder_widths"]), model["rep_dim"])


@dataclass
class Task:
    """What :func:`rnce.ssl.train.fit` trains: ``loss(model, batch, epoch, step)`` on ``dataset``."""

    job: dict
    model: nn.Module
    dataset: torch.utils.data.Dataset
    image_ids: list[str]
    distributed: bool = True
    extra: dict | None = None  # saved with the model (the aggregator's input standardisation)
    augment: Callable | None = None  # stage 1's batched augmentation (None: the dataset makes the views)

    def loss(self, model: nn.Module, batch, epoch: int, step: int) -> Tensor:
        kind, method, settings = self.job["kind"], self.job["method"], self.job["loss"]
        if kind == "encoder":
            v1, v2, aux = self.views(batch, epoch, step) if self.augment is not None else batch
            h = model(torch.cat([v1, v2]))
            h1, h2 = h.chunk(2)
            return contrastive_loss(method, gather(h1), gather(h2), gather(aux), settings)
        if kind == "aggregator":
            reps, aux = batch
            first, second = box_split(self.job["n_boxes"], key_seed(self.job["seed"], epoch, step))
            h1, h2 = model(reps[:, first], first), model(reps[:, second], second)
            views_aux = (aux[:, self.aux_columns(first)], aux[:, self.aux_columns(second)]) if method == "rnce" \
                else None
            return contrastive_loss(method, h1, h2, views_aux, settings)
        if kind == "models_genesis":
            corrupted, original = batch
            return losses.reconstruction(model(corrupted), original)
        earlier, later = batch
        core = model.module if hasattr(model, "module") else model
        z, restored = model(torch.cat([earlier, later]))
        z1, z2 = z.chunk(2)
        return (losses.reconstruction(restored, torch.cat([earlier, later]))
                + settings["lssl_weight"] * losses.lssl_direction(gather(z1), gather(z2), core.direction))

    def views(self, batch, epoch: int, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Two views of each patch of a batch, made on its device in one call (each view its own draw) with
        random parameters keyed by (seed, epoch, step, process): a resumed run makes the views an
        uninterrupted one made."""
        import torch.distributed as dist

        patches, labels, aux = batch
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        generator = torch.Generator(device=patches.device).manual_seed(key_seed(self.job["seed"], epoch, step, rank))
        v1, v2 = self.augment(torch.cat([patches, patches]), torch.cat([labels, labels]), generator).chunk(2)
        return v1, v2, aux

    def aux_columns(self, boxes: Tensor) -> Tensor:
        names = self.job["box_names"]
        columns = sorted({c for b in boxes.tolist() for c in self.job["box_columns"][names[b]]})
        return torch.as_tensor([self.job["aux_index"][c] for c in columns])

    def export(self, model: nn.Module) -> dict:
        """The final model file: weights plus what is needed to rebuild the network."""
        return {"kind": self.job["kind"], "method": self.job["method"], "box": self.job.get("box"),
                "model": self.job["model"], "state_dict": model.state_dict(),
                "box_names": self.job.get("box_names"), **(self.extra or {})}


def box_split(n_boxes: int, seed: int) -> tuple[Tensor, Tensor]:
    """Each box to S1 or S2 with p = 0.5, redrawn until both are non-empty."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        side = torch.rand(n_boxes, generator=generator) < 0.5
        if 0 < int(side.sum()) < n_boxes:
            return torch.nonzero(side).flatten(), torch.nonzero(~side).flatten()


def load_encoder(path: str, device: torch.device | str = "cpu") -> PatchEncoder:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = encoder_model(saved["model"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


def standardise(reps: torch.Tensor, mean: torch.Tensor | None = None, sd: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box representations z-scored per box and dimension (over the pretrain images, or with the
    given ``mean``/``sd``): frozen encoders' outputs share a large common part that would
    otherwise drown the differences between images in the aggregator."""
    if mean is None:
        mean, sd = reps.mean(0), reps.std(0).clamp_min(1e-6)
    return (reps - mean) / sd, mean, sd


@torch.no_grad()
def box_representations(images: Images, encoders: dict[str, str], device: torch.device, batch: int = 64,
                        ) -> torch.Tensor:
    """Frozen stage-1 representations: images x boxes x rep_dim (boxes in ``encoders`` order)."""
    out = []
    for box, path in encoders.items():
        encoder = load_encoder(path, device)
        reps = [encoder(torch.from_numpy(images.batch(list(range(s, min(s + batch, len(images)))), box))[:, None]
                        .to(device)).float().cpu() for s in range(0, len(images), batch)]
        out.append(torch.cat(reps))
    return torch.stack(out, dim=1)


def build(job: dict, device: torch.device) -> Task:
    """The task of a job dict: ``kind``, ``method``, ``box``, ``patch_root``, ``cohorts``,
    ``auxiliary`` / ``auxiliary_boxes`` (R-NCE), ``encoders`` (aggregator), ``visits``
    (LSSL), ``model``, ``train``, ``loss``, ``augment``, ``voxel_mm``, ``seed``."""
    kind, method = job["kind"], job["method"]
    if method not in METHODS:
        raise ValueError(f"unknown SSL method {method!r}; known: {list(METHODS)}")
    images = Images(job["patch_root"], job["cohorts"])
    if job.get("validation_fraction"):
        held = validation_mask(images.table, job["validation_fraction"])
        if held.all():
            raise ValueError(f"ssl.validation_fraction {job['validation_fraction']} leaves no pretrain image to train on")
        log.info("%d of %d pretrain images (a %.0f%% share of the subjects) are held out for validation",
                 int(held.sum()), len(held), 100 * job["validation_fraction"])
        images = images.subset(~held)
    if job.get("train_images"):  # the learning curve's smaller pretraining cohorts (benchmarks/learning_curve.py)
        images = images.subset(nested_subset(images.table, int(job["train_images"])))
    aux = None
    if method == "rnce":
        images, aux_table, box_columns = auxiliary(images, job["auxiliary"], job["auxiliary_boxes"])
        aux = aux_table.to_numpy(np.float32)
    ids = (images.table["cohort"] + "/" + images.table["participant_id"] + "/" + images.table["session_id"]).tolist()
    if kind == "encoder":
        from rnce.ssl.augment import backend_of, patch_transform
        from rnce.ssl.batch_augment import BatchAugment

        images.read_labels(0, job["box"])  # a store without labels fails here, before training starts
        if aux is not None:
            aux = aux[:, [list(aux_table.columns).index(c) for c in box_columns[job["box"]]]]
        voxel_mm = job.get("voxel_mm", 1.0)
        if backend_of(job["augment"]) == "torchio":
            dataset = PatchViews(images, job["box"], patch_transform(job["augment"], voxel_mm), aux, job["seed"])
            return Task(job, encoder_model(job["model"]), dataset, ids)
        return Task(job, encoder_model(job["model"]), Patches(images, job["box"], aux), ids,
                    augment=BatchAugment(job["augment"], voxel_mm))
    if kind == "aggregator":
        names = list(job["encoders"])
        reps, mean, sd = standardise(box_representations(images, job["encoders"], device))
        job = {**job, "n_boxes": len(names), "box_names": names}
        if aux is not None:
            job.update(box_columns=box_columns, aux_index={c: i for i, c in enumerate(aux_table.columns)})
        aux_tensor = torch.as_tensor(aux if aux is not None else np.zeros((len(images), 0)), dtype=torch.float32)
        dataset = torch.utils.data.TensorDataset(reps, aux_tensor)
        model = Aggregator(len(names), job["model"]["rep_dim"], job["model"]["aggregator_depth"],
                           job["model"]["aggregator_heads"])
        return Task(job, model, dataset, ids, distributed=False, extra={"rep_mean": mean, "rep_sd": sd})
    m = job["model"]
    if kind == "models_genesis":
        return Task(job, UNet3D(m["unet_base"], m["unet_depth"], m["rep_dim"]), WholeImages(images, job["seed"]), ids)
    size = images.read(0, "whole_image").shape[0]
    pairs = visit_pairs(images, pd.DataFrame(job["visits"], columns=["cohort", "participant_id", "session_id", "age"]))
    log.info("LSSL: %d pairs of consecutive visits", len(pairs))
    ids = [f"{ids[a]}>{ids[b]}" for a, b in pairs]
    return Task(job, LSSLAutoEncoder(size, m["unet_base"], m["unet_depth"], m["rep_dim"]), VisitPairs(images, pairs),
                ids)


def fingerprint(task: Task) -> str:
    """What a checkpoint must match to be resumed: the job's settings and its training images."""
    import hashlib

    settings = {k: v for k, v in task.job.items() if k not in ("out", "workers", "threads", "aux_index", "box_columns")}
    text = json.dumps(settings, sort_keys=True, default=str) + "\n".join(task.image_ids)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
