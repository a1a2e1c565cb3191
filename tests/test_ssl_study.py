"""R-NCE against SimCLR on a small version of the planted study's calibrated world (issue 14): one box's
encoders trained on the pretrain images, probed on evaluate images they never saw. R-NCE's representation
must carry the box's auxiliary features (criterion e's direction at stage 1); a regression of the method
(a loss, a normalisation, an augmentation, a learning rate) that loses them fails here.

The planted image-only quantity (the focal thinning behind the amyloid task, criterion a) is probed and
reported but not asserted (nor is issue 28's rnce_regional > simclr_regional on it): at this size (~200
pretrain images, 16-d representations, 30 epochs) neither method's encoder carries it (CV R^2 -0.04 for
R-NCE and -0.12 for SimCLR with the exact projection; about -0.02 for both with aux_ridge 1, seeds 0 and 1),
and at the study's size the order is the other way (all boxes side by side: R-NCE 0.21, SimCLR 0.63;
docs/study.md, round 3), so such an assertion would test noise here and be false at scale."""

import numpy as np
import pytest
import torch
from conftest import ROOT, run_snakemake

from rnce.ssl import train
from rnce.ssl.data import Images
from rnce.ssl.diagnostics import box_targets, cv_r2
from rnce.ssl.jobs import make_job, settings
from rnce.ssl.tasks import box_representations

SMALL = ROOT / "tests" / "configs" / "small_study.yaml"
BOX = "rh_parietal"  # holds one side of the focal thinning of the medial precuneus
# config/study.yaml's stage 1 (the paper's exact projection) at a smaller width (rep_dim 16 so that a batch of 40 stays > d)
SSL = {"rep_dim": 16, "encoder_widths": [4, 8, 8, 16, 32], "temperature": 0.1, "aux_weight": 1.0,
       "aux_ridge": 0.0, "seed": 0, "deterministic": False, "bf16": False, "augment": {},
       "stage1": {"epochs": 30, "batch_size": 40, "learning_rate": 0.006, "weight_decay": 1e-5}}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """The small calibrated world's patch stores and auxiliary matrix (no training, no probes)."""
    folder = tmp_path_factory.mktemp("small_study")
    result = run_snakemake("--cores", "2", "--configfile", str(SMALL), "--directory", str(folder),
                           "results_small/features/intensity.tsv", "results_small/features/auxiliary.tsv")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "results_small"


def probes(results, encoder: str) -> dict[str, float]:
    """5-fold CV R^2 of the box's auxiliary features (mean over columns) and of the focal thinning."""
    images = Images(results / "patches", ["evaluate"])
    keep, aux, focal = box_targets(images, str(results / "features" / "auxiliary.tsv"),
                                   str(results / "features" / "auxiliary_boxes.json"), BOX,
                                   str(results / "demo" / "truth" / "evaluate_latent.tsv"))
    x = box_representations(images, {BOX: encoder}, torch.device("cpu"))[:, 0].numpy()[keep]
    return {"auxiliary": float(np.nanmean(cv_r2(x, aux[keep]))), "focal_thinning": float(cv_r2(x, focal[keep])[0])}


def test_rnce_encoder_carries_the_auxiliary_features_of_unseen_images_better_than_simclr(small_world, tmp_path):
    scores = {}
    for method in ("rnce", "simclr"):
        out = tmp_path / method
        job = make_job(method, "encoder", settings(SSL, method, "encoder", 4.0), str(small_world / "patches"),
                       ["pretrain"], {"model": str(out / "encoder.pt"), "metrics": str(out / "metrics.tsv"),
                                      "checkpoints": str(out / "checkpoints")}, threads=2, box=BOX,
                       auxiliary=str(small_world / "features" / "auxiliary.tsv"),
                       auxiliary_boxes=str(small_world / "features" / "auxiliary_boxes.json"))
        train.run(job)
        scores[method] = probes(small_world, job["out"]["model"])
    print(scores)
    # measured, exact projection (the default): R-NCE 0.31, SimCLR 0.01; with aux_ridge 1: R-NCE 0.35 (0.25 at
    # seed 1), SimCLR 0.02, and with 110 pretrain subjects R-NCE fell to 0.19
    assert scores["rnce"]["auxiliary"] > 0.15, scores
    assert scores["rnce"]["auxiliary"] > scores["simclr"]["auxiliary"] + 0.15, scores
