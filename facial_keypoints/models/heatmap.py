"""Heatmap networks: 21 maps at 28x28 on the compact trunk, decoded by soft-argmax (differentiable,
sub-pixel): the shipped network's family."""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from facial_keypoints.keypoints import NUM_POINTS
from facial_keypoints.models.registry import KeypointNet, register
from facial_keypoints.models.regression import CompactTrunk, conv_bn


def soft_argmax(heatmaps: torch.Tensor, frame_size: int) -> torch.Tensor:
    """(N, K, H, W) logits -> (N, 2K) expected (x, y) in frame pixels (integral regression).

    The softmax over each map is a probability of where the point is; its mean
    position is differentiable and sub-pixel, so the coordinate loss trains the maps.
    The mean is one matrix product with a constant (H*W, 2) grid of pixel centres:
    in ONNX that is a single MatMul, not a chain of shape arithmetic.
    """
    return soft_argmax_and_spread(heatmaps, frame_size, spread=False)[0]


def soft_argmax_and_spread(heatmaps: torch.Tensor, frame_size: int, spread: bool = True):
    """``soft_argmax``, and (N, K) each point's spread: the root mean squared distance of its map's
    probability from the mean, in frame pixels (None without ``spread``). A point the network is unsure
    of spreads its map; on validation faces the spread ranks the points' errors (docs/decisions.md)."""
    k, h, w = (int(s) for s in heatmaps.shape[1:])
    probs = torch.softmax(heatmaps.float().reshape(-1, k, h * w), dim=-1)
    grid = pixel_grid(h, w, frame_size).to(probs.device)
    mean = probs @ grid
    if not spread:
        return mean.reshape(-1, 2 * k), None
    # variance = E|p - c|^2 - |mean - c|^2 about the frame's centre c (one more MatMul, with a constant):
    # about the corner, float32 would lose the variance's digits to cancellation
    centre = frame_size / 2.0
    squared = probs @ ((grid - centre) ** 2).sum(dim=1, keepdim=True)  # (N, K, 1)
    off = mean - centre
    return mean.reshape(-1, 2 * k), torch.sqrt(torch.clamp(squared.squeeze(-1) - (off * off).sum(-1), min=0.0))


@functools.cache
def pixel_grid(h: int, w: int, frame_size: int) -> torch.Tensor:
    """(H*W, 2) frame coordinates (x, y) of the centres of an H x W map's cells, row by row."""
    xs = (np.arange(w) + 0.5) * (frame_size / w)
    ys = (np.arange(h) + 0.5) * (frame_size / h)
    gx, gy = np.meshgrid(xs, ys)
    return torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to ``like``'s height and width.

    An exact doubling uses a constant scale factor, which exports to ONNX as one
    Resize with constant scales instead of Shape/Gather/Concat arithmetic (and
    lets the int8 model keep ONNX Runtime's static shape inference).
    """
    h, w = int(like.shape[-2]), int(like.shape[-1])
    if (h, w) == (2 * int(x.shape[-2]), 2 * int(x.shape[-1])):
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    return nn.functional.interpolate(x, size=(h, w), mode="nearest")


@register("compact_heatmap")
class CompactHeatmap(KeypointNet):
    """The compact trunk with a heatmap head: a small FPN back up to 28x28, 21 maps, soft-argmax decoding."""

    def __init__(self, input_size: int = 112, width: int = 32, blocks: tuple[int, int, int] = (2, 2, 2),
                 stem: int = 24, fine_width: int | None = None,
                 inner: tuple[int | None, int | None, int | None] = (None, None, None)):
        super().__init__()
        self.input_size = input_size
        self.embedding_dim = 4 * width
        fine = fine_width or width
        self.trunk = CompactTrunk(width, blocks, stem, fine, inner)
        self.lateral2 = nn.Conv2d(2 * width, 2 * width, 1)
        self.reduce3 = nn.Conv2d(4 * width, 2 * width, 1)
        self.smooth2 = conv_bn(2 * width, fine)
        self.lateral1 = nn.Conv2d(fine, fine, 1)
        self.smooth1 = conv_bn(fine, fine)
        self.heatmaps = nn.Conv2d(fine, NUM_POINTS, 1)

    def forward_with_embedding(self, x):
        return self.forward_with_spread(x, spread=False)[:2]

    def forward_with_spread(self, x, spread: bool = True):
        """(keypoints (N, 42), embedding, each point's spread (N, 21) in crop pixels, or None)."""
        c1, c2, c3 = self.trunk(x)
        top = self.smooth2(self.lateral2(c2) + upsample_to(self.reduce3(c3), c2))
        top = self.smooth1(self.lateral1(c1) + upsample_to(top, c1))
        keypoints, spreads = soft_argmax_and_spread(self.heatmaps(top), self.input_size, spread)
        return keypoints, c3.mean(dim=(2, 3)), spreads


@register("thin_deep48_heatmap")
class ThinDeep48Heatmap(CompactHeatmap):
    """The shipped model's network: the compact heatmap model with fewer channels inside its residual blocks at
    14x14 (48 of 64) and 7x7 (64 of 128), where the 28x28 level that places the keypoints keeps them all.
    Made from a trained compact model by recipes/change_backbone.py --narrow and distilled from it
    (recipes/README.md)."""

    def __init__(self, input_size: int = 112):
        super().__init__(input_size, inner=(None, 48, 64))
