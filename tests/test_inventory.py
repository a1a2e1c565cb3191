"""Header inventory: every image gets a status; a bad one is listed, not fatal."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import write_image

from rnce.imaging.inventory import combine, inventory
from rnce.imaging.io import ImageError


def test_inventory_lists_bad_images_and_keeps_the_rest(tmp_path):
    good = write_image(tmp_path / "good.nii.gz", shape=(60, 64, 56), affine=np.diag([-2.0, 2.0, 2.0, 1.0]))
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    four_d = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), four_d)
    one_volume = tmp_path / "4d1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((60, 60, 60, 1), np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), one_volume)
    # a 66 mm slab (a partial scan, or a header with the wrong voxel size): listed now, not at registration
    slab = write_image(tmp_path / "slab.nii.gz", shape=(120, 120, 22), affine=np.diag([2.0, 2.0, 3.0, 1.0]))
    rows = [{"participant_id": f"p{i}", "session_id": "s", "t1w": str(p)}
            for i, p in enumerate([good, corrupt, four_d, one_volume, tmp_path / "missing.nii.gz", slab])]
    table = inventory(rows, tmp_path / "out" / "shard-0000.tsv")
    status = dict(zip(table["participant_id"], table["status"], strict=True))
    assert status["p0"] == "ok" and table.loc[0, "orientation"] == "LAS"
    assert table.loc[0, "voxel_mm"] == "2x2x2"
    assert status["p1"].startswith("cannot be read")
    assert status["p2"].startswith("expected one 3D volume")
    assert status["p3"] == "ok"
    assert status["p4"] == "file does not exist"
    assert status["p5"].startswith("field of view 240 x 240 x 66 mm is smaller than a brain")
    from rnce.imaging.register import register_to_template

    with pytest.raises(ImageError, match="field of view 240 x 240 x 66 mm"):  # and registration refuses it at once
        register_to_template(slab, resolution=6.0, fast=True)
    written = pd.read_csv(tmp_path / "out" / "shard-0000.tsv", sep="\t")
    assert len(written) == 6
    assert not list((tmp_path / "out").glob(".tmp*"))
    both = combine([str(tmp_path / "out" / "shard-0000.tsv")] * 2, tmp_path / "all.tsv")
    assert len(both) == 12


def ball(path, litres: float, zooms=2.0):
    """A 200 mm cube holding a bright ball of ``litres`` on a faint noisy background (a head or a brain)."""
    n = int(200 / zooms)
    grid = (np.indices((n, n, n)) - n / 2) * zooms
    radius = (3 * litres * 1e6 / (4 * np.pi)) ** (1 / 3)
    data = np.where((grid ** 2).sum(0) < radius ** 2, 100.0, 0.0) + np.random.default_rng(0).random((n, n, n))
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([zooms] * 3 + [1.0])), path)
    return str(path)


def test_inventory_flags_skull_stripped_and_contrast_enhanced_inputs(tmp_path):
    import json

    head, brain = ball(tmp_path / "head.nii.gz", 4.0), ball(tmp_path / "brain.nii.gz", 1.5)
    enhanced = ball(tmp_path / "sub-1_ce-gadolinium_T1w.nii.gz", 4.0)
    sidecar = ball(tmp_path / "sub-2_T1w.nii.gz", 4.0)
    (tmp_path / "sub-2_T1w.json").write_text(json.dumps({"ContrastBolusIngredient": "GADOLINIUM"}))
    img = nib.load(ball(tmp_path / "described.nii.gz", 4.0))
    img.header["descrip"] = b"T1 post Gd contrast"
    nib.save(img, tmp_path / "described.nii.gz")
    paths = [head, brain, enhanced, sidecar, str(tmp_path / "described.nii.gz")]
    rows = [{"participant_id": f"p{i}", "session_id": "s", "t1w": p} for i, p in enumerate(paths)]
    table = inventory(rows, tmp_path / "inv.tsv").set_index("participant_id")
    assert list(table["skull_stripped"]) == [False, True, False, False, False]
    assert table.loc["p0", "contrast"] == "" and table.loc["p1", "contrast"] == ""
    assert table.loc["p2", "contrast"] == "file name: ce-gadolinium"
    assert table.loc["p3", "contrast"] == "sidecar ContrastBolusIngredient: GADOLINIUM"
    assert table.loc["p4", "contrast"].startswith("header description")


def test_registration_keeps_or_excludes_the_flagged_inputs_as_set(tmp_path):
    from rnce.imaging.preprocess import apply_input_flags

    pd.DataFrame({"participant_id": ["a", "b", "c"], "session_id": "s", "skull_stripped": [False, True, False],
                  "contrast": ["", "", "file name: ce-gad"]}).to_csv(tmp_path / "inv.tsv", sep="\t", index=False)
    rows = [{"participant_id": p, "session_id": "s", "image_key": p * 12, "source": f"{p}.nii.gz",
             "brain_extracted": False} for p in "abc"]
    kept, excluded = apply_input_flags(rows, str(tmp_path / "inv.tsv"))
    assert [r["participant_id"] for r in kept] == ["a", "b"] and kept[1]["brain_extracted"] and not kept[0][
        "brain_extracted"]
    assert excluded[0]["participant_id"] == "c" and "register.contrast: exclude" in excluded[0]["reason"]
    kept, excluded = apply_input_flags(rows, str(tmp_path / "inv.tsv"), skull_stripped="exclude", contrast="keep")
    assert [r["participant_id"] for r in kept] == ["a", "c"] and "skull_stripped: exclude" in excluded[0]["reason"]


@pytest.mark.skipif(not os.environ.get("RNCE_REAL_DATA"), reason="set RNCE_REAL_DATA to the real-data folder")
def test_real_heads_are_not_flagged_and_a_real_brain_is(tmp_path):
    from pathlib import Path

    real = Path(os.environ["RNCE_REAL_DATA"]).resolve()
    heads = sorted((real / "T1").rglob("*.nii.gz"))
    assert len(heads) >= 5
    rows = [{"participant_id": f"h{i}", "session_id": "s", "t1w": str(p)} for i, p in enumerate(heads)]
    rows.append({"participant_id": "bert", "session_id": "s", "t1w": str(real / "freesurfer/bert/mri/brain.mgz")})
    table = inventory(rows, tmp_path / "inventory.tsv").set_index("participant_id")
    assert not table.drop(index="bert")["skull_stripped"].any() and table.loc["bert", "skull_stripped"]
    assert (table["contrast"] == "").all()
