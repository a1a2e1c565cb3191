"""Embeddings: the 64-d representation of every image in the patch stores, from frozen models.

Contrastive methods: each box through its stage-1 encoder, all boxes through the
aggregator, its [CLS] output. Models Genesis: the U-Net bottleneck, averaged over
space. LSSL: the auto-encoder's latent. Images that failed registration QC are
not in the patch store, so not embedded; the log counts them per cohort (the
registration QC tables list them).

Output: one TSV, participant_id, session_id, cohort, dim_00 ... dim_{d-1}.

Beyond the paper, :func:`embed_regional` writes a contrastive method's *regional*
representation (feature set ``{method}_regional``): each image's 18 stage-1
representations side by side, without the aggregator. It is not the paper's
image-level representation (Figure 2 probes the 64-d [CLS] output); the planted
study draws it beside the paper's to show what stage 2 keeps of stage 1.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from rnce.imaging.patches import WHOLE_IMAGE
from rnce.io import write_tsv
from rnce.ssl.data import ID_COLUMNS, Images
from rnce.ssl.models import Aggregator, LSSLAutoEncoder, UNet3D
from rnce.ssl.tasks import CONTRASTIVE, box_representations, standardise

log = logging.getLogger(__name__)


def _load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@torch.no_grad()
def image_representations(method: str, images: Images, encoders: dict[str, str] | None, model_path: str,
                          device: torch.device, batch: int = 32, box_reps: torch.Tensor | None = None) -> np.ndarray:
    """images x rep_dim representations of ``images`` by one method's frozen models (contrastive methods:
    ``box_reps``, the stage-1 representations in ``encoders`` order, when the caller has them already)."""
    saved = _load(model_path)
    m = saved["model"]
    if method in CONTRASTIVE:
        names = saved["box_names"]
        if sorted(names) != sorted(encoders or {}):
            raise ValueError(f"{model_path}: the aggregator was trained on boxes {names}, the encoders given "
                             f"are {sorted(encoders or {})}")
        aggregator = Aggregator(len(names), m["rep_dim"], m["aggregator_depth"], m["aggregator_heads"])
        aggregator.load_state_dict(saved["state_dict"])
        aggregator.to(device).eval()
        if box_reps is None:
            box_reps = box_representations(images, {b: encoders[b] for b in names}, device)
        else:  # the aggregator's box order
            box_reps = box_reps[:, [list(encoders).index(b) for b in names]]
        reps, _, _ = standardise(box_reps, saved["rep_mean"], saved["rep_sd"])
        boxes = torch.arange(len(names), device=device)
        return torch.cat([aggregator(reps[s:s + 256].to(device), boxes).float().cpu()
                          for s in range(0, len(reps), 256)]).numpy()
    if method == "models_genesis":
        network = UNet3D(m["unet_base"], m["unet_depth"], m["rep_dim"])
    else:
        size = images.read(0, WHOLE_IMAGE).shape[0]
        network = LSSLAutoEncoder(size, m["unet_base"], m["unet_depth"], m["rep_dim"])
    network.load_state_dict(saved["state_dict"])
    network.to(device).eval()
    out = []
    for s in range(0, len(images), batch):
        x = torch.from_numpy(images.batch(list(range(s, min(s + batch, len(images)))), WHOLE_IMAGE))[:, None]
        out.append(network.represent(x.to(device)).float().cpu())
    return torch.cat(out).numpy()


def regional_representations(box_reps: np.ndarray, fit_rows: np.ndarray, components: int | None,
                             ) -> np.ndarray:
    """The regional representation of images x boxes x dim stage-1 representations: z-scored per box and
    dimension, side by side (boxes x dim columns), then, when ``components`` is set, projected on the first
    ``components`` principal axes. The z-scores and the axes are fitted on ``fit_rows`` (the pretrain
    images) only, so no evaluation image shapes the reduction."""
    flat = box_reps.reshape(len(box_reps), -1).astype(np.float64)
    fit = flat[fit_rows]
    if len(fit) < 2:
        raise ValueError(f"the regional representation needs at least 2 pretrain images to fit its z-scores, got "
                         f"{len(fit)}")
    mean, sd = fit.mean(0), fit.std(0)
    sd[sd < 1e-8] = 1.0
    z = (flat - mean) / sd
    if components is None or components >= flat.shape[1]:
        return z.astype(np.float32)
    if components > len(fit):
        raise ValueError(f"ssl.regional_components is {components}, more than the {len(fit)} pretrain images the "
                         f"principal axes are fitted on")
    _, _, vt = np.linalg.svd(z[fit_rows], full_matrices=False)
    return (z @ vt[:components].T).astype(np.float32)


def _write_embedding(table_ids: pd.DataFrame, reps: np.ndarray, out_path: str, qc_tables: list[str] | None,
                     label: str) -> pd.DataFrame:
    if not np.isfinite(reps).all():
        raise FloatingPointError(f"{label}: non-finite embeddings")
    width = max(2, len(str(reps.shape[1] - 1)))
    dims = pd.DataFrame(reps, columns=[f"dim_{i:0{width}d}" for i in range(reps.shape[1])])
    table = pd.concat([table_ids.reset_index(drop=True), dims], axis=1)
    for qc_path in qc_tables or []:
        qc = pd.read_csv(qc_path, sep="\t", dtype={"participant_id": str, "session_id": str})
        failed = int((~qc["passed"].astype(bool)).sum())
        if failed:
            log.warning("%s: %d image(s) failed registration QC and have no embedding", qc_path, failed)
    write_tsv(table.sort_values(ID_COLUMNS), out_path)
    log.info("%s: %d images embedded in %d dimensions", label, len(table), reps.shape[1])
    return table


def embed_regional(method: str, patch_root: str, cohorts: list[str], pretrain_cohorts: list[str],
                   encoders: dict[str, str], out_path: str, components: int | None = None,
                   qc_tables: list[str] | None = None, threads: int = 1) -> pd.DataFrame:
    """Write ``{method}_regional``, the regional representation (:func:`regional_representations`) of every
    image of ``cohorts``, fitted on those of ``pretrain_cohorts``."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = Images(patch_root, cohorts)
    fit_rows = images.table["cohort"].isin(pretrain_cohorts).to_numpy()
    box_reps = box_representations(images, encoders, device).numpy()
    reps = regional_representations(box_reps, fit_rows, components)
    log.info("%s_regional: %d boxes x %d dimensions side by side, %s, fitted on %d pretrain images", method,
             box_reps.shape[1], box_reps.shape[2], f"{reps.shape[1]} principal components" if components else
             "all kept", int(fit_rows.sum()))
    return _write_embedding(images.table[["participant_id", "session_id", "cohort"]], reps, out_path, qc_tables,
                            f"{method}_regional")


def embed(method: str, patch_root: str, cohorts: list[str], model_path: str, encoders: dict[str, str] | None,
          out_path: str, qc_tables: list[str] | None = None, threads: int = 1) -> pd.DataFrame:
    """Write the embeddings of every image of ``cohorts`` to ``out_path``."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = Images(patch_root, cohorts)
    reps = image_representations(method, images, encoders, model_path, device)
    return _write_embedding(images.table[["participant_id", "session_id", "cohort"]], reps, out_path, qc_tables,
                            method)
