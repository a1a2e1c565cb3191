"""Header inventory: every image gets a status; a bad one is listed, not fatal."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from conftest import write_image

from rnce.imaging.inventory import combine, inventory


def test_inventory_lists_bad_images_and_keeps_the_rest(tmp_path):
    good = write_image(tmp_path / "good.nii.gz", affine=np.diag([-2.0, 2.0, 2.0, 1.0]))
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    four_d = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), four_d)
    one_volume = tmp_path / "4d1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 1), np.float32), np.eye(4)), one_volume)
    rows = [{"participant_id": f"p{i}", "session_id": "s", "t1w": str(p)}
            for i, p in enumerate([good, corrupt, four_d, one_volume, tmp_path / "missing.nii.gz"])]
    table = inventory(rows, tmp_path / "out" / "shard-0000.tsv")
    status = dict(zip(table["participant_id"], table["status"], strict=True))
    assert status["p0"] == "ok" and table.loc[0, "orientation"] == "LAS"
    assert table.loc[0, "voxel_mm"] == "2x2x2"
    assert status["p1"].startswith("cannot be read")
    assert status["p2"].startswith("expected one 3D volume")
    assert status["p3"] == "ok"
    assert status["p4"] == "file does not exist"
    written = pd.read_csv(tmp_path / "out" / "shard-0000.tsv", sep="\t")
    assert len(written) == 5
    assert not list((tmp_path / "out").glob(".tmp*"))
    both = combine([str(tmp_path / "out" / "shard-0000.tsv")] * 2, tmp_path / "all.tsv")
    assert len(both) == 10
