"""Header inventory: every image gets a status; a bad one is listed, not fatal."""

from __future__ import annotations

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
