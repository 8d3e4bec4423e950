"""The reconstruction network (seed 000): masked samples + mask + prediction -> GOP residual."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 6  # samples, mask, prediction, pure flag, chroma flag, quantiser step
RESIDUAL_UNIT = 64.0  # 8-bit levels per unit of the network's residual channels
STEP_UNIT = 32.0  # 8-bit levels per unit of the step channel


class ReconstructionNet(nn.Module):
    """Whole-GOP reconstruction, (2+1)-D convolutions at a quarter of the plane's resolution.

    Input ``[B, 6, T, H, W]`` (H, W multiples of ``unshuffle``), channels in this order:
    the dequantised residual samples ``(x - p) / RESIDUAL_UNIT`` where the mask is 1 (0
    elsewhere), the mask, the prediction ``(p - 128) / RESIDUAL_UNIT``, a pure-mode flag, a
    chroma flag and the quantiser step ``/ STEP_UNIT``. Output ``[B, T, H, W]``: the residual
    ``(x - p) / RESIDUAL_UNIT`` everywhere. Every patch and every mask goes through the same
    convolutions, so there are no block seams.
    """

    def __init__(self, channels: int = 32, blocks: int = 4, unshuffle: int = 4) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        r2 = unshuffle * unshuffle
        self.head = nn.Conv3d(IN_CHANNELS * r2, channels, (1, 3, 3), padding=(0, 1, 1))
        self.spatial = nn.ModuleList(
            nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1)) for _ in range(blocks)
        )
        self.temporal = nn.ModuleList(
            nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)) for _ in range(blocks)
        )
        self.tail = nn.Conv3d(channels, r2, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        r = self.unshuffle
        y = F.pixel_unshuffle(x.transpose(1, 2).reshape(b * t, c, h, w), r)
        y = y.reshape(b, t, -1, h // r, w // r).transpose(1, 2)
        y = F.relu(self.head(y))
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            y = y + temporal(F.relu(spatial(y)))
        y = self.tail(F.relu(y))  # [B, r*r, T, h, w]
        y = y.transpose(1, 2).reshape(b * t, r * r, h // r, w // r)
        return F.pixel_shuffle(y, r).reshape(b, t, h, w)
