"""The batched augmentation against torchio, its reference: transform by transform with the parameters fixed
(affine, flip, blur, and bias field, contrast and spike too: RMS difference < 1% of the image SD), and, for the
random draws, the distribution of the statistic that defines each transform over many views (KS test)."""

import numpy as np
import pytest
import torch
import torchio as tio
from scipy import ndimage, stats

from rnce.ssl import batch_augment as ba
from rnce.ssl.augment import augment, patch_transform

QUIET = {"probability": 1.0, "rotation_deg": 0.0, "crop_zoom": 0.0, "translation_mm": 0.0, "noise_std": 0.0,
         "blur_mm": 0.0, "bias_field": 0.0, "log_gamma": 0.0, "flip": 0.0, "spike": 0.0, "tissue_labels": 0.0}


def _image(shape=(20, 23, 21), seed=0) -> np.ndarray:
    x = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 2).astype(np.float32)
    return x / x.std()


def _labels(image: np.ndarray) -> np.ndarray:
    """0 outside a ball, 1-3 by intensity terciles inside."""
    grid = np.indices(image.shape) - (np.array(image.shape) - 1)[:, None, None, None] / 2
    inside = (grid ** 2).sum(0) < (min(image.shape) / 2.2) ** 2
    cuts = np.quantile(image[inside], [1 / 3, 2 / 3])
    return np.where(inside, 1 + np.digitize(image, cuts), 0).astype(np.uint8)


def _torchio(image: np.ndarray, transform) -> np.ndarray:
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.tensor(image)[None]))
    return transform(subject)["image"].data[0].numpy()


def _relative_rms(a, b) -> float:
    return float(np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).mean()) / np.asarray(b).std())


@pytest.mark.parametrize("shape", [(20, 23, 21), (12, 14, 12)])
@pytest.mark.parametrize("scales,degrees,translation", [
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.05, 1.02, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 1.0, 1.0), (10.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 1.0, 1.0), (0.0, -10.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 1.0, 1.0), (0.0, 0.0, 10.0), (0.0, 0.0, 0.0)),
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (2.0, -1.0, 0.5)),
    ((1.05, 1.02, 1.03), (3.0, -2.0, 2.5), (1.5, -1.0, 0.7)),
])
def test_affine_matches_torchio(shape, scales, degrees, translation):
    image = _image(shape)
    reference = _torchio(image, tio.Affine(scales, degrees, translation, default_pad_value=0))
    matrix = ba.affine_matrix(*(torch.tensor([v], dtype=torch.float64) for v in (scales, degrees, translation)),
                              shape)
    out = ba.affine(torch.tensor(image)[None, None], matrix)[0, 0].numpy()
    assert _relative_rms(out, reference) < 0.01


def test_flip_and_blur_match_torchio():
    image = _image()
    views = ba.BatchAugment({**QUIET, "flip": 1.0})(torch.tensor(image)[None], torch.zeros(1, *image.shape),
                                                      torch.Generator().manual_seed(0))
    assert _relative_rms(views[0, 0], _torchio(image, tio.Flip(axes=(0,)))) < 0.01
    for sd in [(0.5, 1.0, 0.0), (1.0, 0.3, 2.0), (0.2, 0.2, 0.2), (12.0, 0.0, 0.0)]:  # the last: wider than the box
        out = ba.blur(torch.tensor(image)[None, None], torch.tensor([sd]))[0, 0]
        assert _relative_rms(out, _torchio(image, tio.Blur(sd))) < 0.01, sd


def test_bias_field_contrast_and_spike_match_torchio_with_fixed_parameters():
    from torchio.transforms.augmentation.intensity.random_bias_field import BiasField
    from torchio.transforms.augmentation.intensity.random_gamma import Gamma
    from torchio.transforms.augmentation.intensity.random_spike import Spike

    image = _image()
    x = torch.tensor(image)[None, None]
    coefficients = list(np.random.default_rng(1).uniform(-0.3, 0.3, ba.BIAS_TERMS))
    out = ba.bias_field(x.clone(), torch.tensor([coefficients]))[0, 0]
    assert _relative_rms(out, _torchio(image, BiasField(coefficients, 2))) < 0.01
    for g in (0.75, 1.3):
        assert _relative_rms(ba.gamma(x.clone(), torch.tensor([g]))[0, 0], _torchio(image, Gamma(g))) < 0.01
    positions = np.array([[0.3, 0.7, 0.1]])
    out = ba.spike(x.clone(), torch.tensor(positions, dtype=torch.float32), torch.tensor([0.2]))[0, 0]
    reference = _torchio(image, Spike(positions, 0.2))
    assert np.abs(reference - image).max() > 0.01  # the spike changes the image, and both the same way
    assert _relative_rms(out, reference) < 0.01


def _statistics(setting: dict, statistic, n: int = 200, shape=(12, 13, 12)) -> tuple[np.ndarray, np.ndarray]:
    """``statistic(view, image, labels)`` of ``n`` views of one image with only ``setting`` switched on, by the
    batched path and by torchio."""
    image = _image(shape, seed=3)
    labels = _labels(image)
    settings = {**QUIET, **setting}
    batched = ba.BatchAugment(settings)(torch.tensor(image)[None].repeat(n, 1, 1, 1),
                                        torch.tensor(labels)[None].repeat(n, 1, 1, 1), torch.Generator().manual_seed(0))
    transform = patch_transform(settings)
    torch.manual_seed(0)
    reference = [augment(image, labels, transform)[0].numpy() for _ in range(n)]
    return (np.array([statistic(v[0].numpy(), image, labels) for v in batched]),
            np.array([statistic(v, image, labels) for v in reference]))


def _log_ratio(view, image, labels):
    keep = np.abs(image) > 0.2
    return np.log(view[keep] / image[keep])


@pytest.mark.parametrize("setting,statistic", [
    ({"noise_std": 0.1}, lambda v, x, lab: (v - x).std()),
    ({"bias_field": 0.3}, lambda v, x, lab: _log_ratio(v, x, lab).std()),
    ({"bias_field": 0.3}, lambda v, x, lab: _log_ratio(v, x, lab).mean()),
    ({"log_gamma": 0.3}, lambda v, x, lab: np.median(np.log(np.abs(v) + 1e-12)[np.abs(x) > 1.5]
                                                      / np.log(np.abs(x))[np.abs(x) > 1.5])),
    ({"spike": 1.0}, lambda v, x, lab: (v - x).std()),
    ({"tissue_labels": 1.0}, lambda v, x, lab: v[lab == 2].mean()),
    ({"tissue_labels": 1.0}, lambda v, x, lab: v[lab == 3].std()),
    ({"blur_mm": 1.0}, lambda v, x, lab: (v - x).std()),
    ({"rotation_deg": 3.0, "crop_zoom": 0.05, "translation_mm": 2.0}, lambda v, x, lab: (v - x).std()),
])
def test_random_draws_follow_torchio(setting, statistic):
    batched, reference = _statistics(setting, statistic)
    assert batched.std() > 0 and reference.std() > 0
    assert stats.ks_2samp(batched, reference).pvalue > 0.001, (batched.mean(), reference.mean())


def test_the_statistics_tell_a_wrong_magnitude_apart():
    """The check above can fail: noise twice as large is told apart."""
    image = _image((12, 13, 12), seed=3)
    batched = ba.BatchAugment({**QUIET, "noise_std": 0.2})(torch.tensor(image)[None].repeat(200, 1, 1, 1),
                                                            torch.zeros(200, *image.shape),
                                                            torch.Generator().manual_seed(0))
    _, reference = _statistics({"noise_std": 0.1}, lambda v, x, lab: (v - x).std())
    batched = np.array([(v[0].numpy() - image).std() for v in batched])
    assert stats.ks_2samp(batched, reference).pvalue < 1e-6


def test_tissue_labels_keep_the_background_and_follow_the_labels():
    image = _image()
    labels = _labels(image)
    views = ba.BatchAugment({**QUIET, "tissue_labels": 1.0})(torch.tensor(image)[None].repeat(4, 1, 1, 1),
                                                             torch.tensor(labels)[None].repeat(4, 1, 1, 1),
                                                             torch.Generator().manual_seed(1))
    for view in views[:, 0].numpy():
        assert np.allclose(view[labels == 0], image[labels == 0], atol=1e-5)  # only the identity affine's rounding
        means = [view[labels == c].mean() for c in (1, 2, 3)]
        assert all(-1.6 < m < 1.6 for m in means) and len(set(np.round(means, 3))) == 3


def test_same_seed_same_views_and_each_view_its_own_draw():
    image, n = _image((16, 17, 16)), 40
    labels = _labels(image)
    patches = torch.tensor(image)[None].repeat(n, 1, 1, 1).half()  # as the store holds them
    lab = torch.tensor(labels)[None].repeat(n, 1, 1, 1)
    augmenter = ba.BatchAugment({"probability": 0.7, "spike": 0.3, "tissue_labels": 0.3})
    first = augmenter(patches, lab, torch.Generator().manual_seed(5))
    again = augmenter(patches, lab, torch.Generator().manual_seed(5))
    other = augmenter(patches, lab, torch.Generator().manual_seed(6))
    assert first.shape == (n, 1, 16, 17, 16) and first.dtype == torch.float32
    assert torch.equal(first, again) and not torch.equal(first, other)
    flat = first.flatten(1)
    assert len({tuple(np.round(v[:50].tolist(), 4)) for v in flat}) == n  # no two views of the patch alike


def test_views_are_made_in_chunks_on_cpu_with_the_same_distribution(monkeypatch):
    image = _image((16, 17, 16))
    patches = torch.tensor(image)[None].repeat(24, 1, 1, 1)
    labels = torch.tensor(_labels(image))[None].repeat(24, 1, 1, 1)
    augmenter = ba.BatchAugment({"probability": 1.0})
    whole = augmenter(patches, labels, torch.Generator().manual_seed(0))
    monkeypatch.setattr(ba, "CPU_CHUNK_VOXELS", 16 * 17 * 16 * 5)  # chunks of 5 views, the last of 4
    chunked = augmenter(patches, labels, torch.Generator().manual_seed(0))
    assert chunked.shape == whole.shape and torch.isfinite(chunked).all()
    spread = [(v[:, 0] - torch.tensor(image)).std(dim=(1, 2, 3)).mean() for v in (whole, chunked)]
    assert abs(float(spread[0] - spread[1])) < 0.2 * float(spread[0])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="backend"):
        ba.BatchAugment({"backend": "gpu"})
    with pytest.raises(ValueError, match="unknown augmentation"):
        ba.BatchAugment({"rotaton_deg": 5})


REAL = __import__("os").environ.get("RNCE_REAL_DATA")


@pytest.mark.skipif(not REAL, reason="set RNCE_REAL_DATA to the real-data folder")
def test_on_a_real_brain_the_batched_views_match_torchio():
    """A real 1 mm brain (FreeSurfer's bert, brain.mgz): a parietal-sized box, z-scored inside the brain, labels
    from intensity terciles. With the parameters fixed, affine and blur agree with torchio; the whole default
    pipeline's views differ from the box as much on both paths (KS)."""
    import nibabel as nib

    data = np.asarray(nib.load(f"{REAL}/freesurfer/bert/mri/brain.mgz").dataobj, dtype=np.float32)
    box = data[100:161, 60:126, 100:161]
    brain = box > 0
    image = np.where(brain, (box - box[brain].mean()) / box[brain].std(), 0).astype(np.float32)
    cuts = np.quantile(image[brain], [1 / 3, 2 / 3])
    labels = np.where(brain, 1 + np.digitize(image, cuts), 0).astype(np.uint8)
    assert brain.mean() > 0.5  # the box is inside the brain
    x = torch.tensor(image)[None, None]
    params = ((1.04, 1.02, 1.01), (2.5, -1.5, 2.0), (1.5, -1.0, 0.7))
    matrix = ba.affine_matrix(*(torch.tensor([v], dtype=torch.float64) for v in params), image.shape)
    reference = _torchio(image, tio.Affine(*params, default_pad_value=0))
    assert _relative_rms(ba.affine(x, matrix)[0, 0], reference) < 0.01
    assert _relative_rms(ba.blur(x, torch.tensor([[0.8, 0.3, 1.0]]))[0, 0], _torchio(image, tio.Blur((0.8, 0.3, 1.0)))) < 0.01
    n = 40
    views = ba.BatchAugment()(torch.tensor(image)[None].repeat(n, 1, 1, 1), torch.tensor(labels)[None].repeat(n, 1, 1, 1),
                              torch.Generator().manual_seed(0))
    transform = patch_transform()
    torch.manual_seed(0)
    batched = np.array([(v[0].numpy() - image).std() for v in views])
    reference = np.array([(augment(image, labels, transform)[0].numpy() - image).std() for _ in range(n)])
    assert stats.ks_2samp(batched, reference).pvalue > 0.001, (np.median(batched), np.median(reference))
