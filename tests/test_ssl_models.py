"""Networks and augmentations: shapes, layer counts, subsets, and bad input."""

import numpy as np
import pytest
import torch

from rnce.ssl.augment import augment, genesis_corrupt, patch_transform, tissue_labels
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


def test_tissue_labels_and_augmented_views():
    from conftest import ROOT

    from rnce.imaging.patches import box_slices
    from rnce.imaging.template import mni_template
    from rnce.regions import read_regions

    t1, _ = mni_template(4.0)
    box = box_slices(read_regions(ROOT / "config" / "regions.tsv"), t1.affine, t1.shape)["lh_parietal"]
    labels = tissue_labels(box, None, 4.0)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    patch = t1.get_fdata(dtype=np.float32)[box]
    transform = patch_transform({"probability": 1.0, "tissue_labels": 0.0})
    torch.manual_seed(0)
    a, b = augment(patch, labels, transform), augment(patch, labels, transform)
    assert a.shape == (1, *patch.shape) and torch.isfinite(a).all()
    assert not torch.allclose(a, b)
    synth = augment(patch, labels, patch_transform({"probability": 0.0, "flip": 0.0, "spike": 0.0,
                                                     "tissue_labels": 1.0}))
    # labels mapped to Gaussians: within one class the synthetic intensities share a mean
    means = [float(synth[0][torch.as_tensor(labels == c)].mean()) for c in (1, 2, 3)]
    assert len({round(m, 3) for m in means}) == 3
    with pytest.raises(ValueError, match="unknown augmentation"):
        patch_transform({"rotaton_deg": 5})


def test_genesis_corruption_changes_the_image_and_keeps_its_shape():
    image = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    rng = np.random.default_rng(1)
    corrupted = [genesis_corrupt(image, rng) for _ in range(5)]
    assert all(c.shape == image.shape and np.isfinite(c).all() for c in corrupted)
    assert sum(not np.allclose(c, image) for c in corrupted) >= 4
