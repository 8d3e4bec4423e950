"""The mask-selection network (seed 000): per [16, 8, 8] patch, scores for each candidate mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 6  # residual to code, prediction, pure flag, chroma flag, step, RD lambda
PATCH_SIDE = 8  # the patch's height and width; its depth is the whole GOP


class MaskSelector(nn.Module):
    """Whole-GOP mask selection: ``[B, 6, T, H, W]`` -> logits ``[B, K, H/8, W/8]``.

    Input channels: the residual ``(x - p) / 64``, the prediction ``(p - 128) / 64``, the pure
    flag, the chroma flag, the quantiser step ``/ 32`` and ``log2(lambda) / 8``. The best
    candidate of a patch is the arg-max of its logits (lower RD cost = higher logit).
    """

    halo = 32  # rows and columns of context a tile takes: more than the network's reach

    def __init__(self, candidates: int, channels: int = 48) -> None:
        super().__init__()
        r2 = PATCH_SIDE * PATCH_SIDE
        self.embed = nn.Conv3d(IN_CHANNELS * r2, channels, 1)
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        self.spatial = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, candidates, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        r = PATCH_SIDE
        y = F.pixel_unshuffle(x.transpose(1, 2).reshape(b * t, c, h, w), r)
        y = y.reshape(b, t, -1, h // r, w // r).transpose(1, 2)
        y = F.relu(self.embed(y))
        y = F.relu(self.temporal(y))
        pooled = torch.cat([y.mean(dim=2), y.amax(dim=2)], dim=1)  # [B, 2C, h, w]
        return self.out(F.relu(self.spatial(pooled)))
