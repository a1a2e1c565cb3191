"""The study's yardsticks without training: the regional representation's reduction, the raw-voxel ceiling's
kernel ridge, the held-out share of the pretrain subjects and the instance-discrimination accuracy."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_patch_store

from rnce.ssl.ceiling import kernel_ridge_scores
from rnce.ssl.data import nested_subset, validation_mask
from rnce.ssl.embed import regional_representations
from rnce.ssl.validation import held_out_r2, top1


def test_regional_representation_is_fitted_on_the_pretrain_rows_only():
    rng = np.random.default_rng(0)
    reps = rng.normal(size=(60, 18, 4)).astype(np.float32)
    fit = np.arange(60) < 40
    out = regional_representations(reps, fit, 10)
    assert out.shape == (60, 10)
    moved = reps.copy()
    moved[50:] += 5.0  # other evaluation images change nothing for the images already there
    np.testing.assert_allclose(regional_representations(moved, fit, 10)[:50], out[:50], atol=1e-5)
    side_by_side = regional_representations(reps, fit, None)
    assert side_by_side.shape == (60, 72)
    np.testing.assert_allclose(side_by_side[fit].mean(0), 0, atol=1e-5)
    with pytest.raises(ValueError, match="more than the 40 pretrain images"):
        regional_representations(reps, fit, 50)


def test_kernel_ridge_ceiling_recovers_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 100))
    y = np.column_stack([x @ rng.normal(size=100) + rng.normal(0, 3, 600), rng.normal(size=600)])
    r2 = kernel_ridge_scores(x[:400] @ x[:400].T, x[400:] @ x[:400].T, y[:400], y[400:])
    assert 0.8 < r2[0] < 0.95  # 100 / (100 + 9) is the best possible
    assert -0.1 < r2[1] < 0.05


def test_validation_share_is_by_subject_and_stable():
    table = pd.DataFrame({"cohort": ["a"] * 4000, "participant_id": [f"s{i // 2}" for i in range(4000)]})
    held = validation_mask(table, 0.1)
    assert 0.08 < held.mean() < 0.12
    assert (held[0::2] == held[1::2]).all()  # both visits of a subject on the same side
    np.testing.assert_array_equal(validation_mask(table.iloc[::-1], 0.1), held[::-1])
    assert not validation_mask(table, 0.0).any()
    with pytest.raises(ValueError, match="validation_fraction"):
        validation_mask(table, 1.0)


def test_top1_and_held_out_r2():
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(size=(64, 16)))
    assert top1(z, z + 0.01 * torch.randn(64, 16), 32) == 1.0
    assert top1(z, torch.from_numpy(rng.normal(size=(64, 16))), 32) < 0.2
    x = rng.normal(size=(300, 5))
    y = x[:, :2] + rng.normal(0, 0.5, (300, 2))
    assert held_out_r2(x[:200], y[:200], x[200:], y[200:]) > 0.7
    assert held_out_r2(x[:200], rng.normal(size=(200, 2)), x[200:], rng.normal(size=(100, 2))) < 0.05


def test_nested_subsets_take_whole_subjects_and_grow_by_inclusion():
    table = pd.DataFrame({"cohort": ["a"] * 300, "participant_id": [f"s{i // 3}" for i in range(300)]})
    small, large = nested_subset(table, 60), nested_subset(table, 150)
    assert small.sum() == 60 and large.sum() == 150 and (large[small]).all()
    assert (small.reshape(-1, 3).sum(1) % 3 == 0).all()  # 60 = 20 whole subjects of 3 images
    with pytest.raises(ValueError, match="between 1 and the 300"):
        nested_subset(table, 301)


def test_rnce_top1_compares_the_residuals_its_nce_term_sees():
    """R-NCE's two stage-2 views each fit their own boxes' auxiliary features: on the raw H they differ by
    design, and only the residuals R' = H - P_A[H] (what its NCE term compares) hold the image's identity."""
    rng = np.random.default_rng(1)
    n, d, k = 128, 16, 6
    identity = rng.normal(size=(n, d))
    a1, a2 = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    h1 = identity + 5 * a1 @ rng.normal(size=(k, d))
    h2 = identity + 5 * a2 @ rng.normal(size=(k, d))
    h1, h2, a1, a2 = (torch.from_numpy(m) for m in (h1, h2, a1, a2))
    assert top1(h1, h2, 64) < 0.3
    assert top1(h1, h2, 64, a1, a2) > 0.9


def test_validation_names_the_file_and_a_missing_auxiliary_column(tmp_path):
    from rnce.ssl.validation import validation

    boxes = tmp_path / "auxiliary_boxes.json"
    boxes.write_text('{"boxes": {"lh_parietal": ["lh_precuneus_thickness"]}}')
    aux = tmp_path / "auxiliary.tsv"
    aux.write_text("participant_id\tsession_id\tcohort\tother\ns1\tses-01\tpre\t0.1\n")
    store = write_patch_store(tmp_path / "patches")
    with pytest.raises(ValueError, match=r"auxiliary\.tsv: no column\(s\) or box\(es\) \['lh_precuneus_thickness'\]"):
        validation("rnce", str(store), ["pre"], {"lh_parietal": "x.pt"}, "agg.pt", str(aux), str(boxes),
                   {"validation_fraction": 0.5, "seed": 0}, {}, str(tmp_path / "out.tsv"))
