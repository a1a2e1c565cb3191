"""Networks (METHOD §4): the 13-conv patch encoder, the transformer aggregator,
the 3D U-Net of Models Genesis and the LSSL auto-encoder. Widths and depths are
arguments, so the demo runs the same code at a CPU-sized width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3x3 convolution, BatchNorm, ELU."""
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm3d(c_out), nn.ELU(inplace=True))


class PatchEncoder(nn.Module):
    """The DrasCLR patch encoder: 13 conv layers, global max + average pooling.

    Layout for ``widths = (w0, w1, w2, w3, w4)`` (paper: 8, 16, 32, 64, 128):
    conv 1->w0; conv w0->w0 stride 2; three blocks of three convs
    (w0->w1->w2->w3 across the blocks), the last of each stride 2; conv w3->w4;
    conv w4->rep_dim stride 2. Each conv is followed by BatchNorm and ELU. The
    representation is max-pooling plus average-pooling over space, so boxes of
    any size give a ``rep_dim`` vector.

    Input B x 1 x X x Y x Z; output B x rep_dim.
    """

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64, 128), rep_dim: int = 64):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"PatchEncoder: widths needs 5 values (w0..w4), got {list(widths)}")
        w0, w1, w2, w3, w4 = widths
        layers = [conv_block(1, w0), conv_block(w0, w0, 2)]
        previous = w0
        for width in (w1, w2, w3):
            layers += [conv_block(previous, width), conv_block(width, width), conv_block(width, width, 2)]
            previous = width
        layers += [conv_block(w3, w4), conv_block(w4, rep_dim, 2)]
        self.features = nn.Sequential(*layers)
        self.rep_dim = rep_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"PatchEncoder expects B x 1 x X x Y x Z, got {tuple(x.shape)}")
        f = self.features(x).flatten(2)
        return f.amax(dim=2) + f.mean(dim=2)


class Aggregator(nn.Module):
    """Transformer over box representations: a learned [CLS] token and one learned
    positional embedding per box; the [CLS] output is the image representation.

    ``forward(reps, boxes)``: ``reps`` B x L x dim for the boxes whose indices
    (0..n_boxes-1) are ``boxes`` (length L, any subset, any order); returns B x dim.
    """

    def __init__(self, n_boxes: int = 18, dim: int = 64, depth: int = 3, heads: int = 2):
        super().__init__()
        if dim % heads:
            raise ValueError(f"Aggregator: width {dim} is not divisible by {heads} heads")
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(n_boxes, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.n_boxes = n_boxes

    def forward(self, reps: Tensor, boxes: Tensor) -> Tensor:
        if reps.ndim != 3 or reps.shape[1] != len(boxes):
            raise ValueError(f"Aggregator expects B x {len(boxes)} x dim for {len(boxes)} boxes, got "
                             f"{tuple(reps.shape)}")
        if len(boxes) == 0 or int(boxes.max()) >= self.n_boxes or int(boxes.min()) < 0:
            raise ValueError(f"Aggregator: box indices must be a non-empty subset of 0..{self.n_boxes - 1}")
        tokens = reps + self.position[boxes]
        tokens = torch.cat([self.cls.expand(reps.shape[0], -1, -1), tokens], dim=1)
        return self.norm(self.blocks(tokens)[:, 0])


class UNet3D(nn.Module):
    """3D U-Net (Models Genesis): ``depth`` down-sampling levels from ``base`` channels,
    a bottleneck of ``rep_dim`` channels whose spatial average is the representation.

    Input B x 1 x S x S x S with S divisible by 2**depth.
    """

    def __init__(self, base: int = 16, depth: int = 4, rep_dim: int = 64):
        super().__init__()
        widths = [base * 2 ** i for i in range(depth)]
        self.down = nn.ModuleList()
        previous = 1
        for width in widths:
            self.down.append(nn.Sequential(conv_block(previous, width), conv_block(width, width)))
            previous = width
        self.bottleneck = nn.Sequential(conv_block(previous, rep_dim), conv_block(rep_dim, rep_dim))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        previous = rep_dim
        for width in reversed(widths):
            self.up.append(nn.ConvTranspose3d(previous, width, 2, stride=2))
            self.merge.append(nn.Sequential(conv_block(2 * width, width), conv_block(width, width)))
            previous = width
        self.head = nn.Conv3d(previous, 1, 1)
        self.depth = depth

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if x.ndim != 5 or any(s % 2 ** self.depth for s in x.shape[2:]):
            raise ValueError(f"UNet3D expects B x 1 x S x S x S with S divisible by {2 ** self.depth}, "
                             f"got {tuple(x.shape)}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool3d(x, 2)
        return self.bottleneck(x), skips

    def represent(self, x: Tensor) -> Tensor:
        return self.encode(x)[0].flatten(2).mean(dim=2)

    def forward(self, x: Tensor) -> Tensor:
        x, skips = self.encode(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class LSSLAutoEncoder(nn.Module):
    """LSSL: a convolutional auto-encoder with a ``rep_dim`` latent and a learned
    ageing direction (``direction``) in latent space.

    Input B x 1 x S x S x S with S divisible by 2**depth.
    """

    def __init__(self, size: int = 96, base: int = 16, depth: int = 4, rep_dim: int = 64):
        super().__init__()
        if size % 2 ** depth:
            raise ValueError(f"LSSLAutoEncoder: image size {size} is not divisible by 2**{depth}")
        widths = [base * 2 ** i for i in range(depth)]
        encoder, previous = [], 1
        for width in widths:
            encoder += [conv_block(previous, width), conv_block(width, width, 2)]
            previous = width
        self.encoder = nn.Sequential(*encoder)
        self.grid = (previous, *(size // 2 ** depth,) * 3)
        cells = previous * (size // 2 ** depth) ** 3
        self.to_latent = nn.Linear(cells, rep_dim)
        self.from_latent = nn.Linear(rep_dim, cells)
        decoder = []
        for width in reversed(widths[:-1]):
            decoder += [nn.ConvTranspose3d(previous, width, 2, stride=2), nn.BatchNorm3d(width), nn.ELU(inplace=True)]
            previous = width
        decoder += [nn.ConvTranspose3d(previous, previous, 2, stride=2), nn.ELU(inplace=True),
                    nn.Conv3d(previous, 1, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)
        self.direction = nn.Parameter(torch.randn(rep_dim) / rep_dim ** 0.5)
        self.size = size

    def represent(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or tuple(x.shape[2:]) != (self.size,) * 3:
            raise ValueError(f"LSSLAutoEncoder expects B x 1 x {self.size}^3, got {tuple(x.shape)}")
        return self.to_latent(self.encoder(x).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.from_latent(z).view(-1, *self.grid))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.represent(x)
        return z, self.decode(z)
