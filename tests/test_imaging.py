"""Image input, registration to MNI-152, registration QC and the patch store."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from rnce.imaging.io import ImageError, load_image
from rnce.imaging.patches import PatchStore
from rnce.imaging.preprocess import preprocess_shard
from rnce.imaging.qc import registration_qc
from rnce.imaging.register import register_to_template

REAL = os.environ.get("RNCE_REAL_DATA")


def _save(path: Path, data: np.ndarray, affine=None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _brainish(shape=(20, 22, 18)) -> np.ndarray:
    return np.random.default_rng(1).random(shape).astype(np.float32) + 0.5


@pytest.mark.parametrize("make,expected", [
    (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00garbage"), "cannot be read"),
    (lambda p: p.write_bytes(gzip.compress(_save(p.with_suffix(".tmp.nii"), _brainish()).read_bytes())[:400]),
     "cannot be read"),
    (lambda p: _save(p, np.ones((5, 5, 5, 3), np.float32)), "expected one 3D volume"),
    (lambda p: _save(p, np.zeros((5, 5, 5), np.float32)), "all zero"),
    (lambda p: _save(p, np.where(_brainish() > 1.2, np.nan, _brainish())), "NaN or infinite"),
    (lambda p: None, "file does not exist"),
    (lambda p: _save(p, _brainish(), np.diag([25.0, 1, 1, 1])), "absurd voxel size"),
    (lambda p: _save(p, _brainish(), np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])),
     "non-orthonormal"),
])
def test_bad_images_are_errors_naming_the_file(tmp_path, make, expected):
    path = tmp_path / "bad.nii.gz"
    make(path)
    with pytest.raises(ImageError, match=expected) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_images_are_reoriented_squeezed_and_forms_checked(tmp_path, caplog):
    data = _brainish()
    lia = np.array([[-1.0, 0, 0, 10], [0, 0, 1.5, -5], [0, -2.0, 0, 7], [0, 0, 0, 1]])  # anisotropic, LIA
    img = load_image(_save(tmp_path / "lia.nii.gz", data[..., None], lia))
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S") and img.shape == (20, 18, 22)
    assert np.allclose(sorted(img.header.get_zooms()), [1.0, 1.5, 2.0])
    # the same voxel keeps its value at the same world position
    world = lia @ np.array([3, 4, 5, 1.0])
    ijk = np.round(np.linalg.inv(img.affine) @ world).astype(int)[:3]
    assert img.get_fdata()[tuple(ijk)] == pytest.approx(data[3, 4, 5])
    both = nib.Nifti1Image(data, np.eye(4))
    both.set_qform(np.diag([1.0, 1, 1, 1]), code=1)
    both.set_sform(np.diag([2.0, 2, 2, 1]), code=1)
    nib.save(both, tmp_path / "forms.nii.gz")
    with caplog.at_level(logging.WARNING):
        img = load_image(tmp_path / "forms.nii.gz")
    assert "qform and sform disagree" in caplog.text and np.allclose(img.header.get_zooms(), 2.0)
    mgz = tmp_path / "img.mgz"
    nib.save(nib.MGHImage(data, np.eye(4)), mgz)
    assert load_image(mgz).shape == data.shape


def _images(world: Path, n: int) -> list[dict]:
    latent = pd.read_csv(world / "truth" / "evaluate_latent.tsv", sep="\t").head(n)
    return [{"participant_id": r.participant_id, "session_id": r.session_id, "image_key": f"{i:012x}",
             "source": str(world / "images" / "evaluate" / f"{r.participant_id}_{r.session_id}_T1w.nii.gz"),
             "brain_extracted": False, "orientation": r.orientation} for i, r in enumerate(latent.itertuples())]


def test_simulated_images_of_any_orientation_pass_qc(tiny_world):
    rows = _images(tiny_world[0], 8)
    assert len({r["orientation"] for r in rows}) > 2
    for row in rows:
        result = register_to_template(row["source"], resolution=4.0, fast=True)
        assert result.template_correlation > 0.5, row  # the floor is 0.35
        assert result.image.shape == result.mask.shape


def test_storage_order_does_not_change_the_registration(tiny_world, tmp_path):
    source = Path(_images(tiny_world[0], 1)[0]["source"])
    img = nib.as_closest_canonical(nib.load(source))
    ornt = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt("PSR"))
    data = nib.orientations.apply_orientation(img.get_fdata(), ornt)
    affine = img.affine @ nib.orientations.inv_ornt_aff(ornt, img.shape)
    psr = _save(tmp_path / "psr.nii.gz", data.astype(np.float32), affine)
    a = register_to_template(source, resolution=6.0, fast=True).image.get_fdata()
    b = register_to_template(psr, resolution=6.0, fast=True).image.get_fdata()
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_shard_with_bad_images_writes_the_rest_and_lists_them(tiny_world, tmp_path):
    rows = _images(tiny_world[0], 4)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage")
    blank = _save(tmp_path / "blank.nii.gz", np.zeros((10, 10, 10), np.float32))
    rows += [{"participant_id": "bad1", "session_id": "1", "image_key": "b" * 12, "source": str(corrupt),
              "brain_extracted": False},
             {"participant_id": "bad2", "session_id": "1", "image_key": "c" * 12, "source": str(blank),
              "brain_extracted": False}]
    out = tmp_path / "patches" / "evaluate" / "shard-0000"
    scores = preprocess_shard(rows, str(out), str(ROOT / "config" / "regions.tsv"), resolution=4.0, fast=True)
    assert list(scores["reason"] == "") == [True] * 4 + [False, False]
    assert "cannot be read" in scores["reason"].iat[4] and "all zero" in scores["reason"].iat[5]
    assert not list(out.parent.glob(".tmp*"))
    with pytest.raises(FileNotFoundError, match="passed.tsv is missing"):  # QC decides what the store serves
        PatchStore(tmp_path / "patches", "evaluate")
    table = registration_qc([str(out)], str(tmp_path / "qc.tsv"), str(out.parent / "passed.tsv"),
                            str(tmp_path / "qc.png"), 0.35, 3.5, 10, 3, None, 4.0)
    passed = table.set_index("participant_id")["passed"].to_dict()
    assert passed == {r["participant_id"]: not r["participant_id"].startswith("bad") for r in rows}
    assert table["robust_z"].isna().all()  # 4 images of one site < qc_min_site_size: the floor decides
    assert (tmp_path / "qc.png").stat().st_size > 5000
    store = PatchStore(tmp_path / "patches", "evaluate")
    assert len(store) == 4 and len(store.boxes) == 18
    patch = store.get(rows[2]["participant_id"], rows[2]["session_id"], "lh_medial_temporal")
    assert patch.dtype == np.float16 and patch.ndim == 3 and np.isfinite(patch).all()
    batch = store.batch([3, 0, 1], "rh_parietal")
    assert batch.shape[0] == 3 and batch.dtype == np.float32
    assert np.array_equal(batch[1], store.get(rows[0]["participant_id"], rows[0]["session_id"], "rh_parietal"))
    assert (out / "transforms" / f"{rows[0]['image_key']}.mat").exists()
    with pytest.raises(KeyError, match="bad1 1 is not in the patch store"):
        store.get("bad1", "1", "rh_parietal")


@pytest.mark.skipif(not REAL, reason="set RNCE_REAL_DATA to the real-data folder")
@pytest.mark.parametrize("name,brain", [("T1/chris_t1.nii.gz", False), ("freesurfer/bert/mri/brain.mgz", True)])
def test_real_scans_register_and_pass_qc(name, brain, tmp_path):
    path = Path(REAL) / name
    result = register_to_template(path, resolution=2.0, brain_extracted=brain)
    assert result.template_correlation >= 0.5
    if not brain:  # the head scan stored in another voxel order registers as well
        img = nib.as_closest_canonical(nib.load(path))
        ornt = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                               nib.orientations.axcodes2ornt("LIA"))
        lia = _save(tmp_path / "lia.nii.gz", nib.orientations.apply_orientation(img.get_fdata(), ornt)
                    .astype(np.float32), img.affine @ nib.orientations.inv_ornt_aff(ornt, img.shape))
        assert register_to_template(lia, resolution=2.0).template_correlation >= 0.5
    else:  # FreeSurfer's own aseg.mgz, moved with brain.mgz's transform, gives its tissue labels
        from rnce.imaging.patches import normalise
        from rnce.imaging.segment import aseg_tissue, segment_tissue, template_priors

        mask = result.mask.get_fdata() > 0.5
        image = normalise(result.image.get_fdata(dtype=np.float32), mask)
        labels = aseg_tissue(str(path.parent / "aseg.mgz"), str(path), result.transform, result.mask, mask, image)
        own = segment_tissue(image, mask, template_priors(None, 2.0))
        assert (labels[mask] == own[mask]).mean() > 0.6
        assert 0.3 < (labels[mask] == 3).mean() < 0.5 and 0.3 < (labels[mask] == 2).mean() < 0.6


def test_a_configured_template_path_is_used(tiny_world, tmp_path):
    from rnce.imaging.template import mni_template

    t1, mask = mni_template(2.0)
    path = _save(tmp_path / "template.nii.gz", (t1.get_fdata() * mask.get_fdata()).astype(np.float32), t1.affine)
    result = register_to_template(_images(tiny_world[0], 1)[0]["source"], template=str(path), resolution=4.0,
                                  fast=True)
    assert result.template_correlation > 0.5
    assert np.allclose(result.image.affine[:3, :3], np.eye(3) * 4.0)


def test_intensity_baseline_reads_each_images_own_tissue_means(tmp_path):
    from conftest import write_patch_store

    from rnce.imaging.intensity import class_means, intensity_features

    root = write_patch_store(tmp_path / "store", n=24)
    table = intensity_features(str(root), ["pre"], str(tmp_path / "intensity.tsv"))
    features = [c for c in table.columns if c.endswith("_mean")]
    assert len(features) == 54 and table[features].notna().all().all()
    assert list(table.columns[:3]) == ["participant_id", "session_id", "cohort"]
    # the store's images scale their cortex by 1 + 0.3 x signal: their GM means follow it
    truth = pd.read_csv(root / "auxiliary.tsv", sep="\t").merge(table, on=["participant_id", "session_id"])
    signal = pd.read_csv(root / "visits.tsv", sep="\t").merge(truth, on=["participant_id", "session_id"])["signal"]
    gm = truth[[c for c in features if c.endswith("_gm_mean")]].mean(axis=1)
    assert abs(np.corrcoef(gm, signal)[0, 1]) > 0.5  # (z-scored per image: GM brighter -> lower contrast)
    # a class absent from a patch: NaN with a zero count (filled from the other boxes by intensity_features)
    means, counts = class_means(np.ones((1, 2, 2, 2)), np.full((1, 2, 2, 2), 2, np.uint8))
    assert counts.tolist() == [[0, 8, 0]] and means[0, 1] == 1.0 and np.isnan(means[0, 0])


def test_an_image_whose_segmentation_fails_is_a_qc_failure_not_a_crash(tiny_world, tmp_path, monkeypatch):
    from rnce.imaging import preprocess
    from rnce.imaging.segment import SegmentationError, segment_tissue

    rows = _images(tiny_world[0], 2)
    calls = []

    def second_fails(data, mask, priors):
        calls.append(1)
        if len(calls) == 2:
            raise SegmentationError("the segmentation found 2 of 3 tissue classes inside the brain mask")
        return segment_tissue(data, mask, priors)

    monkeypatch.setattr(preprocess, "segment_tissue", second_fails)
    out = tmp_path / "patches" / "evaluate" / "shard-0000"
    scores = preprocess.preprocess_shard(rows, str(out), str(ROOT / "config" / "regions.tsv"), resolution=4.0,
                                         fast=True)
    assert scores["reason"].iat[1].startswith("tissue segmentation: the segmentation found 2 of 3")
    qc = registration_qc([str(out)], str(tmp_path / "qc.tsv"), str(out.parent / "passed.tsv"),
                         str(tmp_path / "qc.png"), resolution=4.0)
    assert qc.set_index("image_key").loc[[r["image_key"] for r in rows], "passed"].tolist() == [True, False]
    store = PatchStore(tmp_path / "patches", "evaluate")
    assert len(store) == 1 and store.index["image_key"].iat[0] == rows[0]["image_key"]
    labels = store.label_array(store.index["shard"].iat[0], "lh_parietal")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3} and len(np.unique(labels)) == 4


def test_freesurfer_aseg_gives_the_labels_and_a_mismatched_one_falls_back(tmp_path, caplog):
    import ants

    from rnce.imaging.patches import normalise
    from rnce.imaging.preprocess import tissue_labels
    from rnce.imaging.register import RegistrationResult
    from rnce.imaging.segment import (
        SegmentationError,
        aseg_tissue,
        segment_tissue,
        template_labels,
        template_priors,
    )
    from rnce.imaging.template import load_template

    # an image already on the template grid (identity transform) whose aseg holds the template's classes,
    # each class written as several FreeSurfer structures (0 inside the brain = sulcal CSF)
    t1, mask_img = load_template(None, 4.0)
    mask = mask_img.get_fdata() > 0.5
    template = template_labels(None, 4.0)
    pick = np.random.default_rng(0).integers(0, 3, template.shape)
    codes = np.choose(template, [np.zeros_like(pick), np.choose(pick, [0, 24, 4]), np.choose(pick, [3, 17, 10]),
                                 np.choose(pick, [2, 41, 16])])
    fs = tmp_path / "sub-01" / "mri"
    fs.mkdir(parents=True)
    nib.save(nib.MGHImage(t1.get_fdata(dtype=np.float32), t1.affine), fs / "brain.mgz")
    nib.save(nib.MGHImage(codes.astype(np.int32), t1.affine), fs / "aseg.mgz")
    result = RegistrationResult(t1, ants.new_ants_transform(dimension=3, transform_type="AffineTransform"), 1.0,
                                mask_img)
    normalised = normalise(t1.get_fdata(dtype=np.float32), mask)
    priors = template_priors(None, 4.0)
    row = {"participant_id": "sub-01", "session_id": "ses-1", "source": str(fs / "brain.mgz"),
           "aseg": str(fs / "aseg.mgz")}
    labels = tissue_labels(row, result, normalised, mask, priors)
    assert np.array_equal(labels[mask], template[mask]) and not labels[~mask].any()
    own = segment_tissue(normalised, mask, priors)
    assert (own[mask] != template[mask]).mean() > 0.05  # so the aseg, not the image segmentation, gave them
    # the same aseg 40 mm away (a raw T1w's aseg from another session): no overlap -> segmented, subject named
    other = tmp_path / "sub-01-raw"
    other.mkdir()
    shifted = t1.affine.copy()
    shifted[:3, 3] += 40
    nib.save(nib.MGHImage(codes.astype(np.int32), shifted), other / "aseg.mgz")
    with caplog.at_level(logging.WARNING, logger="rnce.imaging.preprocess"):
        fallback = tissue_labels({**row, "aseg": str(other / "aseg.mgz")}, result, normalised, mask, priors)
    assert np.array_equal(fallback, own)
    assert "subject sub-01 session ses-1" in caplog.text and "does not overlap" in caplog.text
    # beside a brain.mgz on another grid, or unreadable: not this image's
    nib.save(nib.MGHImage(np.ones((8, 8, 8), np.float32), np.eye(4)), fs / "brain.mgz")
    with pytest.raises(SegmentationError, match="is not on the grid of"):
        aseg_tissue(str(fs / "aseg.mgz"), str(fs / "brain.mgz"), result.transform, mask_img, mask, normalised)
    (other / "aseg.mgz").write_bytes(b"not an mgz")
    with pytest.raises(SegmentationError, match="cannot be read"):
        aseg_tissue(str(other / "aseg.mgz"), str(fs / "brain.mgz"), result.transform, mask_img, mask, normalised)
