"""Networks and augmentations: shapes, layer counts, subsets, and bad input."""

import numpy as np
import pytest
import torch

from rnce.ssl.augment import augment, genesis_corrupt, patch_transform
from rnce.ssl.models import Aggregator, LSSLAutoEncoder, PatchEncoder, UNet3D


@pytest.mark.parametrize("shape", [(17, 18, 17), (9, 12, 10), (40, 31, 33)])
def test_patch_encoder_gives_a_fixed_size_representation_for_any_box(shape):
    encoder = PatchEncoder((2, 4, 4, 8, 8), rep_dim=64)
    assert encoder(torch.randn(3, 1, *shape)).shape == (3, 64)


def test_patch_encoder_has_13_convolutions_each_with_batchnorm_and_elu():
    encoder = PatchEncoder()
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 13
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in encoder.modules()) == 13
    assert sum(isinstance(m, torch.nn.ELU) for m in encoder.modules()) == 13
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 64]
    assert sum(c.stride[0] == 2 for c in convs) == 5
    with pytest.raises(ValueError, match="widths needs 5"):
        PatchEncoder((8, 16, 32))
    with pytest.raises(ValueError, match="B x 1 x X x Y x Z"):
        encoder(torch.randn(2, 16, 16, 16))


def test_aggregator_takes_any_subset_of_boxes():
    torch.manual_seed(0)
    aggregator = Aggregator(n_boxes=18, dim=16, depth=3, heads=2).eval()
    reps = torch.randn(4, 18, 16)
    full = aggregator(reps, torch.arange(18))
    assert full.shape == (4, 16)
    subset = torch.tensor([3, 7, 11])
    assert aggregator(reps[:, subset], subset).shape == (4, 16)
    # no positional information in the order of the tokens: permuting boxes and reps together changes nothing
    order = torch.randperm(18)
    assert torch.allclose(aggregator(reps[:, order], order), full, atol=1e-5)
    # but the positional embedding distinguishes boxes: the same reps at other boxes differ
    assert not torch.allclose(aggregator(reps[:, :3], torch.tensor([0, 1, 2])),
                              aggregator(reps[:, :3], torch.tensor([5, 6, 7])))
    with pytest.raises(ValueError, match="subset of 0..17"):
        aggregator(reps[:, :2], torch.tensor([0, 18]))


def test_reconstruction_networks_shapes():
    unet = UNet3D(base=2, depth=2, rep_dim=8)
    x = torch.randn(2, 1, 16, 16, 16)
    assert unet(x).shape == x.shape and unet.represent(x).shape == (2, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        unet(torch.randn(1, 1, 18, 16, 16))
    lssl = LSSLAutoEncoder(size=16, base=2, depth=2, rep_dim=8)
    z, restored = lssl(x)
    assert z.shape == (2, 8) and restored.shape == x.shape


def _two_subjects(resolution=4.0):
    """Two registered images of one template grid with different anatomy: B's grey matter is
    thinned (replaced by CSF) in one half of the brain, A's in the other."""

    from rnce.imaging.patches import normalise
    from rnce.imaging.segment import template_priors
    from rnce.imaging.template import mni_template

    t1, mask = mni_template(resolution)
    brain = mask.get_fdata() > 0.5
    priors = template_priors(None, resolution)
    csf, gm, wm = priors
    half = np.zeros(brain.shape, bool)
    half[: brain.shape[0] // 2] = True
    rng = np.random.default_rng(0)
    images = []
    for thinned in (half, ~half):
        g = np.where(thinned, 0.1 * gm, gm)
        c = csf + gm - g
        data = 0.15 * c + 0.55 * g + 0.85 * wm + rng.normal(0, 0.02, brain.shape)
        images.append(normalise(data.astype(np.float32), brain))
    return images, brain, priors, (csf, gm, wm), half


def test_each_image_gets_its_own_tissue_labels():
    from rnce.imaging.segment import SegmentationError, segment_tissue

    (a, b), brain, priors, (_, gm, _), half = _two_subjects()
    la, lb = segment_tissue(a, brain, priors), segment_tissue(b, brain, priors)
    assert set(np.unique(la)) == {0, 1, 2, 3} and (la[~brain] == 0).all()
    # each follows its own anatomy: less GM where its grey matter was thinned
    template_gm = brain & (gm > 0.5)
    assert (la[half & template_gm] == 2).mean() < (lb[half & template_gm] == 2).mean() - 0.2
    assert (lb[~half & template_gm] == 2).mean() < (la[~half & template_gm] == 2).mean() - 0.2
    flat = np.where(brain, 1.0, 0.0).astype(np.float32)
    with pytest.raises(SegmentationError, match="constant"):
        segment_tissue(flat, brain, priors)
    two_classes = np.where(brain & (gm > 0.3), 1.0, 0.0) + np.random.default_rng(1).normal(0, 0.01, brain.shape)
    with pytest.raises(SegmentationError):
        segment_tissue(two_classes.astype(np.float32), brain, priors)


def test_label_views_differ_between_subjects_and_follow_their_own_labels():
    from rnce.imaging.segment import segment_tissue

    (a, b), brain, priors, _, _ = _two_subjects()
    la, lb = segment_tissue(a, brain, priors), segment_tissue(b, brain, priors)
    box = (slice(2, 46), slice(10, 44), slice(8, 38))
    synth = patch_transform({"probability": 0.0, "flip": 0.0, "spike": 0.0, "tissue_labels": 1.0})
    views = []
    for image, labels in ((a, la), (b, lb)):
        torch.manual_seed(3)  # one random draw for both
        views.append(augment(image[box], labels[box], synth)[0].numpy())
    inside = brain[box]
    assert np.abs(views[0] - views[1])[inside].max() > 0.5  # the template's labels would make them identical
    # a view is its labels mapped to Gaussians: its own labels explain more of it than the other image's
    def explained(view, labels):  # between-class share of the variance (eta squared)
        v, lab = view[inside], labels[box][inside]
        within = sum(((v[lab == c] - v[lab == c].mean()) ** 2).sum() for c in np.unique(lab))
        return 1 - within / ((v - v.mean()) ** 2).sum()

    own = [explained(v, lab) for v, lab in zip(views, (la, lb), strict=True)]
    other = [explained(v, lab) for v, lab in zip(views, (lb, la), strict=True)]
    assert all(o > x + 0.1 for o, x in zip(own, other, strict=True)), (own, other)


def test_augmented_views():
    (a, _), brain, priors, _, _ = _two_subjects()
    from rnce.imaging.segment import segment_tissue

    labels = segment_tissue(a, brain, priors)
    patch = a[2:30, 10:40, 8:30]
    transform = patch_transform({"probability": 1.0, "tissue_labels": 0.0})
    torch.manual_seed(0)
    x, y = augment(patch, labels[2:30, 10:40, 8:30], transform), augment(patch, labels[2:30, 10:40, 8:30], transform)
    assert x.shape == (1, *patch.shape) and torch.isfinite(x).all()
    assert not torch.allclose(x, y)
    with pytest.raises(ValueError, match="unknown augmentation"):
        patch_transform({"rotaton_deg": 5})


def test_spatial_augmentations_keep_a_registered_focal_change_in_place():
    """A view may move a focal change by about the residual misregistration (2 mm, 3 degrees, 5% zoom), not
    by a centimetre: on a 4 mm grid its centre stays within a voxel; the natural-image sizes moved it further."""
    patch = np.zeros((12, 14, 12), np.float32)
    patch[2:5, 3:6, 4:7] = 1.0  # a blob off the centre, where rotation and zoom move it most
    labels = np.ones(patch.shape, np.int64)
    grid = np.indices(patch.shape).reshape(3, -1)

    def largest_shift(transform) -> float:
        torch.manual_seed(0)
        centre = (grid * patch.ravel()).sum(1) / patch.sum()
        shifts = []
        for _ in range(60):
            view = augment(patch, labels, transform)[0].numpy().clip(0).ravel()
            shifts.append(np.linalg.norm((grid * view).sum(1) / view.sum() - centre))
        return float(max(shifts))

    quiet = {"noise_std": 0.0, "blur_mm": 0.0, "bias_field": 0.0, "log_gamma": 0.0, "spike": 0.0, "tissue_labels": 0.0,
             "probability": 1.0}
    registered = largest_shift(patch_transform(quiet, voxel_mm=4.0))
    natural = largest_shift(patch_transform({**quiet, "flip": 0.5, "rotation_deg": 10.0, "crop_zoom": 0.15,
                                             "translation_mm": 8.0}, voxel_mm=4.0))
    assert 0.05 < registered < 1.0 < natural, (registered, natural)
    assert largest_shift(patch_transform({**quiet, "translation_mm": 8.0}, voxel_mm=4.0)) > 1.0  # mm, not voxels
    with pytest.raises(ValueError, match="voxel_mm"):
        patch_transform(voxel_mm=0)


def test_blur_is_in_mm_on_any_grid():
    """``blur_mm`` is the same anatomy on a 1 mm and a 4 mm grid: the largest blur of a point, measured in mm,
    agrees on both (in voxels it differed four times)."""
    quiet = {"noise_std": 0.0, "bias_field": 0.0, "log_gamma": 0.0, "spike": 0.0, "tissue_labels": 0.0,
             "rotation_deg": 0.0, "crop_zoom": 0.0, "translation_mm": 0.0, "probability": 1.0, "blur_mm": 4.0}

    def largest_spread_mm(voxel_mm: float, size: int) -> float:
        torch.manual_seed(0)
        point = np.zeros((size,) * 3, np.float32)
        point[(size // 2,) * 3] = 1.0
        transform = patch_transform(quiet, voxel_mm=voxel_mm)
        offsets = (np.arange(size) - size // 2) * voxel_mm
        spreads = []
        for _ in range(40):
            view = augment(point, np.ones(point.shape, np.int64), transform)[0].numpy().sum(axis=(1, 2))
            spreads.append(np.sqrt((view * offsets ** 2).sum() / view.sum()))
        return float(max(spreads))

    fine, coarse = largest_spread_mm(1.0, 41), largest_spread_mm(4.0, 11)
    assert 3.0 < fine < 4.2 and 3.0 < coarse < 4.2, (fine, coarse)
    assert abs(fine - coarse) < 0.6, (fine, coarse)


def test_genesis_corruption_changes_the_image_and_keeps_its_shape():
    image = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    rng = np.random.default_rng(1)
    corrupted = [genesis_corrupt(image, rng) for _ in range(5)]
    assert all(c.shape == image.shape and np.isfinite(c).all() for c in corrupted)
    assert sum(not np.allclose(c, image) for c in corrupted) >= 4
