"""The augmentations of :mod:`rnce.ssl.augment`, applied to a whole batch on the training device.

torchio makes one view at a time on the CPU (about 30 ms of a core for a 1 mm
parietal box) and has no GPU path, so a GPU fed by loader workers idles. Here
the loader only reads the patch store; :class:`BatchAugment` turns a batch of
patches (and their tissue labels) into views where the encoder trains (GPU when
present, else CPU), with independent random parameters per view, drawn as
torchio draws them, in torchio's order:

==================  ==========================================================================
tissue labels       GM/WM/CSF to N(mean, sd) per label, mean U(-1.5, 1.5), sd U(0.05, 0.3)
rotation/crop       ``F.affine_grid`` + ``F.grid_sample`` (trilinear) of torchio's transform:
                    zoom-in U(1, 1 + crop_zoom), rotation and shift per axis, about the centre
flip                left-right (axis 0)
bias field          exp of a 2nd-order polynomial (10 coefficients) on centred coordinates
contrast            sign(x) |x| ** gamma, log gamma U(-log_gamma, log_gamma)
blur                separable Gaussian per axis, SD U(0, blur_mm) mm, scipy's kernel and reflection
noise               N(0, sd), sd U(0, noise_std)
spike               one k-space spike of max |FFT| x U(0.1, 0.3), added as its cosine in image space
==================  ==========================================================================

Why plain torch: every transform is one batched tensor operation of a few
lines, with a parameter per view. MONAI's random array transforms take one
channel-first image and draw one set of parameters per call, so a batch with a
draw per view would be a Python loop over the views again (what this module
removes); its batched deterministic piece (``AffineTransform``) is a thin
wrapper of ``affine_grid``/``grid_sample``. cornucopia is built for the GPU but,
by its own benchmark, is slower than torchio on the CPU, where the demo, the
planted study and CI train, and it brings two compiled-kernel dependencies
(torch-interpol, torch-distmap). torchio stays the reference
(``ssl.augment.backend: torchio``); ``tests/test_ssl_batch_augment.py`` checks,
transform by transform, that with the same parameters the two agree.

On CPU the batch is augmented a few views at a time (:data:`CPU_CHUNK_VOXELS`),
so temporaries stay under glibc's 32 MB mmap ceiling (above it every temporary
costs fresh zeroed pages), and the transforms work in place.

Randomness comes from one ``torch.Generator`` on the batch's device: on CPU, the
same seed gives the same views (the training loop keys it by seed, epoch, step
and process, so a resumed run sees the views an uninterrupted one saw).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rnce.ssl.augment import BIAS_ORDER, LABEL_MEAN, LABEL_SD, SPIKE_INTENSITY, settings_of

BIAS_TERMS = (BIAS_ORDER + 1) * (BIAS_ORDER + 2) * (BIAS_ORDER + 3) // 6  # 10 polynomial terms of order <= 2
TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default
CPU_CHUNK_VOXELS = 2_000_000  # views augmented together on a CPU (8 MB a volume, 24 MB a sampling grid)


def _uniform(shape, low, high, g: torch.Generator, device) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=g, device=device)


def _chosen(n: int, p: float, g: torch.Generator, device) -> Tensor:
    """Indices of the views a transform of probability ``p`` applies to."""
    return torch.nonzero(torch.rand(n, generator=g, device=device) < p).flatten()


def affine_matrix(scales: Tensor, degrees: Tensor, translation: Tensor, shape) -> Tensor:
    """B x 4 x 4 maps from output to input voxel indices of torchio's ``Affine`` on an identity-affine image:
    SimpleITK's inverse of (scaling about the centre) o (Euler ZXY rotation in LPS about the centre, shift),
    that is v_in = F R^T F ((v_out - c) / s - t) + c with F = diag(-1, -1, 1)."""
    rx, ry, rz = (torch.deg2rad(degrees) * degrees.new_tensor([-1.0, -1.0, 1.0])).unbind(1)  # RAS -> LPS angles
    one, zero = torch.ones_like(rx), torch.zeros_like(rx)
    rot_x = torch.stack([one, zero, zero, zero, rx.cos(), -rx.sin(), zero, rx.sin(), rx.cos()], 1).view(-1, 3, 3)
    rot_y = torch.stack([ry.cos(), zero, ry.sin(), zero, one, zero, -ry.sin(), zero, ry.cos()], 1).view(-1, 3, 3)
    rot_z = torch.stack([rz.cos(), -rz.sin(), zero, rz.sin(), rz.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    flip = torch.diag(degrees.new_tensor([-1.0, -1.0, 1.0]))
    rotation = flip @ (rot_z @ rot_x @ rot_y).transpose(1, 2) @ flip
    linear = rotation / scales[:, None, :]
    centre = degrees.new_tensor([(n - 1) / 2 for n in shape])
    out = torch.eye(4, dtype=degrees.dtype, device=degrees.device).repeat(len(degrees), 1, 1)
    out[:, :3, :3] = linear
    out[:, :3, 3] = centre - linear @ centre - (rotation @ translation[:, :, None])[:, :, 0]
    return out


def _inside(matrix: Tensor, shape) -> Tensor:
    """B x X x Y x Z: which output voxels ``matrix`` maps to within half a voxel of the input grid (SimpleITK
    samples those, the edge's value where needed, and gives the rest 0). Along each z line the inside voxels
    are an interval, found from the six bounds (far cheaper than testing every grid point)."""
    m = matrix.to(torch.float64)
    xs, ys, zs = (torch.arange(n, dtype=torch.float64, device=m.device) for n in shape)
    base = m[:, :3, 0, None, None] * xs[:, None] + m[:, :3, 1, None, None] * ys[None] + m[:, :3, 3, None, None]
    slope = m[:, :3, 2, None, None]
    low, high = -0.5, torch.tensor(shape, dtype=torch.float64, device=m.device).view(1, 3, 1, 1) - 0.5
    moving = slope.abs() > 1e-12
    a, b = (low - base) / torch.where(moving, slope, 1.0), (high - base) / torch.where(moving, slope, 1.0)
    within = (base >= low) & (base <= high)  # a line parallel to the bounds: all in or all out
    infinity = torch.tensor(torch.inf, dtype=torch.float64, device=m.device)
    first = torch.where(moving, torch.minimum(a, b), torch.where(within, -infinity, infinity)).amax(1)
    last = torch.where(moving, torch.maximum(a, b), torch.where(within, infinity, -infinity)).amin(1)
    return (zs >= first[..., None]) & (zs <= last[..., None])


def affine(x: Tensor, matrix: Tensor) -> Tensor:
    """Resample B x 1 x X x Y x Z by voxel maps ``matrix`` (B x 4 x 4), trilinear, zero outside (as torchio)."""
    shape = tuple(x.shape[2:])
    to_norm = torch.diag(matrix.new_tensor([2 / max(n - 1, 1) for n in shape] + [1.0]))
    to_norm[:3, 3] = -1.0
    normalised = (to_norm @ matrix @ torch.linalg.inv(to_norm))[:, :3].to(x.dtype)
    # the sampling grid: one component at a time, each a sum of one broadcast line per axis, then viewed as
    # grid_sample's (..., 3) with coordinates (z, y, x) (3-5x faster on CPU than F.affine_grid's bmm)
    lines = [torch.linspace(-1, 1, n, device=x.device, dtype=x.dtype) for n in shape]
    components = torch.empty((len(x), 3, *shape), device=x.device, dtype=x.dtype)
    for k, c in enumerate((2, 1, 0)):
        row = normalised[:, c]
        components[:, k] = (row[:, 0, None, None, None] * lines[0][:, None, None]
                            + row[:, 1, None, None, None] * lines[1][:, None]
                            + (row[:, 2, None] * lines[2] + row[:, 3, None])[:, None, None])
    grid = components.permute(0, 2, 3, 4, 1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.masked_fill_(~_inside(matrix, shape)[:, None], 0.0)


def bias_field(x: Tensor, coefficients: Tensor) -> Tensor:
    """x times exp(sum of coefficients (B x terms, torchio's order) times the polynomial terms), summed axis
    by axis: z's powers first, then y's, then x's, so the full volume is touched three times, not ten.
    Overwrites ``x``."""
    axes = []
    for n in x.shape[2:]:
        r = torch.arange(n, dtype=torch.float64) - n / 2 + 0.5
        axes.append((r / r.max() if r.max() > 0 else r).to(device=x.device, dtype=x.dtype))
    ax, ay, az = axes
    c = coefficients.to(x.dtype)
    term, field = 0, torch.zeros_like(x[:, 0])
    for i in range(BIAS_ORDER + 1):
        plane = 0
        for j in range(BIAS_ORDER + 1 - i):
            line = 0
            for k in range(BIAS_ORDER + 1 - i - j):
                line = line + c[:, term, None] * az[None] ** k
                term += 1
            plane = plane + (ay[None, :, None] ** j) * line[:, None, :]
        field.add_((ax[None, :, None, None] ** i) * plane[:, None])
    return x.mul_(field.exp_()[:, None])


def gamma(x: Tensor, gammas: Tensor) -> Tensor:
    """sign(x) |x| ** gamma per view (torchio's rule for images with negative values; the same otherwise)."""
    return x.abs().pow_(gammas.to(x.dtype).view(-1, 1, 1, 1, 1)).copysign_(x)


def _reflect(index: Tensor, n: int) -> Tensor:
    """scipy's 'reflect' boundary (d c b a | a b c d | d c b a): where an index outside 0..n-1 reads from."""
    i = index % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _shifted_add(acc: Tensor, x: Tensor, dim: int, shift: int, weight: Tensor) -> None:
    """acc[i] += weight * x[reflect(i + shift)] along ``dim``: one strided pass for the inside, a gather for the
    |shift| edge slices."""
    n = x.shape[dim]
    inside = max(0, n - abs(shift))
    if inside:
        target = acc.narrow(dim, 0 if shift > 0 else n - inside, inside)
        target.addcmul_(x.narrow(dim, shift if shift > 0 else 0, inside), weight)
    edge = torch.arange(inside, n, device=x.device) if shift > 0 else torch.arange(0, n - inside, device=x.device)
    if len(edge):
        source = x.index_select(dim, _reflect(edge + shift, n))
        acc.index_add_(dim, edge, source * weight)


def blur(x: Tensor, sd: Tensor) -> Tensor:
    """Gaussian blur with SD ``sd`` (B x 3, voxels) per view and axis, as ``scipy.ndimage.gaussian_filter``:
    kernels truncated at int(4 sd + 0.5) voxels, normalised, edges reflected; an SD of 0 leaves the axis."""
    out = x
    view = [-1, 1, 1, 1, 1]
    for axis in range(3):
        s = sd[:, axis].to(torch.float64)
        radii = (TRUNCATE * s + 0.5).floor()
        radius = int(radii.max())
        if radius == 0:
            continue
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float64)
        weights = torch.exp(-0.5 * offsets ** 2 / s.clamp_min(1e-12)[:, None] ** 2)
        weights = torch.where(offsets.abs() <= radii[:, None], weights, 0.0)
        weights = torch.where(s[:, None] > 1e-15, weights, (offsets == 0).to(weights.dtype))
        weights = (weights / weights.sum(1, keepdim=True)).to(x.dtype)
        acc = out * weights[:, radius].view(view)
        for shift in range(1, radius + 1):
            for signed in (shift, -shift):
                _shifted_add(acc, out, 2 + axis, signed, weights[:, radius + signed].view(view))
        out = acc
    return out


def spike(x: Tensor, positions: Tensor, intensity: Tensor) -> Tensor:
    """torchio's ``Spike`` with one spike: max |FFT| x intensity added at ``positions`` (B x 3 in [0, 1)) of the
    centred spectrum. Its inverse FFT's real part is that amplitude's cosine wave over the voxel count, which
    is added directly (one real FFT per view finds the maximum)."""
    shape = x.shape[2:]
    peak = torch.fft.rfftn(x[:, 0].to(torch.float32), dim=(1, 2, 3)).abs().flatten(1).amax(1)
    n = torch.tensor(shape, device=x.device)
    frequency = (positions * n).floor() - n // 2
    phase = 0
    for axis, size in enumerate(shape):
        grid = torch.arange(size, device=x.device, dtype=torch.float32).view([-1 if a == axis else 1
                                                                               for a in range(3)])
        phase = phase + (frequency[:, axis].view(-1, 1, 1, 1) * grid[None]) / size
    wave = torch.cos(2 * math.pi * phase) * (peak * intensity / math.prod(shape)).view(-1, 1, 1, 1)
    return x + wave[:, None].to(x.dtype)


def tissue_labels(x: Tensor, labels: Tensor, means: Tensor, sds: Tensor, g: torch.Generator) -> Tensor:
    """Labels 1-3 (CSF, GM, WM) replaced by N(mean, sd) per view and label (B x 3 each); 0 keeps the image."""
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    tissue = torch.empty_like(x)
    view = [-1, 1, 1, 1, 1]
    for label in range(3):
        torch.mul(noise, sds[:, label].to(x.dtype).view(view), out=tissue)
        tissue.add_(means[:, label].to(x.dtype).view(view))
        x = torch.where(labels == label + 1, tissue, x)
    return x


class BatchAugment:
    """Views of a batch: ``augment(patches, labels, generator)`` with patches B x X x Y x Z (or B x 1 x ...)
    and labels of the same shape; returns B x 1 x X x Y x Z float32 on the patches' device. ``settings`` and
    ``voxel_mm`` as :func:`rnce.ssl.augment.patch_transform`."""

    def __init__(self, settings: dict | None = None, voxel_mm: float = 1.0):
        self.s = settings_of(settings, voxel_mm)
        self.voxel_mm = voxel_mm

    @torch.no_grad()
    def __call__(self, patches: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        per_chunk = len(patches)
        if patches.device.type == "cpu":  # keep temporaries under glibc's 32 MB mmap ceiling (page faults otherwise)
            per_chunk = max(1, CPU_CHUNK_VOXELS // math.prod(patches.shape[-3:]))
        views = torch.empty((len(patches), 1, *patches.shape[-3:]), device=patches.device)
        with torch.autocast(patches.device.type, enabled=False):
            for s in range(0, len(patches), per_chunk):
                chunk = views[s:s + per_chunk]
                chunk.copy_(patches[s:s + per_chunk].reshape(chunk.shape))
                self._augment(chunk, labels[s:s + per_chunk].reshape(chunk.shape), g)
        return views

    def _augment(self, x: Tensor, labels: Tensor, g: torch.Generator) -> None:
        """Augment the views ``x`` (B x 1 x X x Y x Z, float32) in place."""
        s, device = self.s, x.device
        n, p = len(x), s["probability"]

        def draw(shape, low, high):
            return _uniform(shape, low, high, g, device)

        if len(i := _chosen(n, s["tissue_labels"], g, device)):
            x[i] = tissue_labels(x[i], labels[i], draw((len(i), 3), *LABEL_MEAN), draw((len(i), 3), *LABEL_SD), g)
        if len(i := _chosen(n, p, g, device)):
            matrix = affine_matrix(draw((len(i), 3), 1.0, 1.0 + s["crop_zoom"]).double(),
                                   draw((len(i), 3), -s["rotation_deg"], s["rotation_deg"]).double(),
                                   draw((len(i), 3), -s["translation_vox"], s["translation_vox"]).double(),
                                   x.shape[2:])
            x[i] = affine(x[i], matrix)
        if len(i := _chosen(n, s["flip"], g, device)):
            x[i] = x[i].flip(2)
        if len(i := _chosen(n, p, g, device)):
            x[i] = bias_field(x[i], draw((len(i), BIAS_TERMS), -s["bias_field"], s["bias_field"]))
        if len(i := _chosen(n, p, g, device)):
            x[i] = gamma(x[i], torch.exp(draw((len(i),), -s["log_gamma"], s["log_gamma"])))
        if len(i := _chosen(n, p, g, device)):
            x[i] = blur(x[i], draw((len(i), 3), 0.0, s["blur_vox"]))
        if len(i := _chosen(n, p, g, device)):
            sd = draw((len(i),), 0.0, s["noise_std"]).view(-1, 1, 1, 1, 1)
            x[i] = x[i].add_(torch.randn((len(i), *x.shape[1:]), generator=g, device=device).mul_(sd))
        if len(i := _chosen(n, s["spike"], g, device)):
            x[i] = spike(x[i], torch.rand((len(i), 3), generator=g, device=device), draw((len(i),), *SPIKE_INTENSITY))
