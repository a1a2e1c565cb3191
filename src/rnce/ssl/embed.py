"""Embeddings: the 64-d representation of every image in the patch stores, from frozen models.

Contrastive methods: each box through its stage-1 encoder, all boxes through the
aggregator, its [CLS] output. Models Genesis: the U-Net bottleneck, averaged over
space. LSSL: the auto-encoder's latent. Images that failed registration QC are
not in the patch store, so not embedded; the log counts them per cohort (the
registration QC tables list them).

Output: one TSV, participant_id, session_id, cohort, dim_00 ... dim_{d-1}.
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


def embed(method: str, patch_root: str, cohorts: list[str], model_path: str, encoders: dict[str, str] | None,
          out_path: str, qc_tables: list[str] | None = None, threads: int = 1) -> pd.DataFrame:
    """Write the embeddings of every image of ``cohorts`` to ``out_path``."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = Images(patch_root, cohorts)
    reps = image_representations(method, images, encoders, model_path, device)
    if not np.isfinite(reps).all():
        raise FloatingPointError(f"{method}: non-finite embeddings from {model_path}")
    dims = pd.DataFrame(reps, columns=[f"dim_{i:02d}" for i in range(reps.shape[1])])
    table = pd.concat([images.table[["participant_id", "session_id", "cohort"]], dims], axis=1)
    for qc_path in qc_tables or []:
        qc = pd.read_csv(qc_path, sep="\t", dtype={"participant_id": str, "session_id": str})
        failed = int((~qc["passed"].astype(bool)).sum())
        if failed:
            log.warning("%s: %d image(s) failed registration QC and have no embedding", qc_path, failed)
    write_tsv(table.sort_values(ID_COLUMNS), out_path)
    log.info("%s: %d images embedded in %d dimensions", method, len(table), reps.shape[1])
    return table
