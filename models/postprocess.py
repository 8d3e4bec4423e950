"""The post-processing network (seed 004): upscaled base layer -> cleaner frames, per s and QP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONDITIONS = 2  # the condition vector: base-layer QP / QP_UNIT, scale s - 1
QP_UNIT = 51.0
NEIGHBOURS = 3  # frames in: the previous, the frame itself, the next (edge-replicated in a GOP)
LUMA_UNSHUFFLE = 4  # luma folds 4x4 -> 16 channels; chroma 2x2 -> 4 channels per plane
PIXEL_UNIT = 64.0  # 8-bit levels per unit of the network's inputs and outputs
FRAME_CHANNELS = LUMA_UNSHUFFLE**2 + 2 * (LUMA_UNSHUFFLE // 2) ** 2  # 24 per frame
RECEPTIVE_RADIUS = 8 * LUMA_UNSHUFFLE  # luma pixels each side that one output depends on


def condition(base_qp: int, scale: int) -> torch.Tensor:
    """The condition ``[CONDITIONS]`` of a GOP coded at ``base_qp`` and shrunk by ``scale``."""
    return torch.tensor([base_qp / QP_UNIT, float(scale - 1)])


class PostNet(nn.Module):
    """Artifact removal and detail recovery on a whole frame, at a quarter of luma resolution.

    ``forward(y, u, v, cond)``: ``y`` ``[B, 3, H, W]``, ``u``, ``v`` ``[B, 3, H/2, W/2]``: three
    consecutive frames of the bicubic-upscaled decoded base layer in 8-bit levels, H and W
    multiples of 4; ``cond`` ``[B, CONDITIONS]``. Returns the middle frame's planes cleaned,
    ``[B, H, W]`` and ``[B, H/2, W/2]`` twice, as the input plus a learned correction.
    Luma and chroma are folded into one tensor (pixel unshuffle), so 4:2:0 needs no resampling;
    the condition scales and shifts every block's channels (FiLM, as in CResMD), so that one set
    of weights serves every QP and scale. The correction starts at zero (identity network).
    """

    def __init__(self, channels: int = 32, blocks: int = 3) -> None:
        super().__init__()
        self.channels, self.blocks = channels, blocks
        self.head = nn.Conv2d(NEIGHBOURS * FRAME_CHANNELS, channels, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2 * blocks)
        )
        self.film = nn.Sequential(
            nn.Linear(CONDITIONS, channels),
            nn.LeakyReLU(0.1),
            nn.Linear(channels, 4 * blocks * channels),
        )
        self.tail = nn.Conv2d(channels, FRAME_CHANNELS, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(
        self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, h, w = y.shape
        r = LUMA_UNSHUFFLE
        fold = [
            F.pixel_unshuffle(p.reshape(b * n, 1, *p.shape[-2:]), s)
            for p, s in ((y, r), (u, r // 2), (v, r // 2))
        ]
        x = torch.cat(fold, dim=1).reshape(b, n * FRAME_CHANNELS, h // r, w // r)
        x = (x - 128.0) / PIXEL_UNIT
        mod = self.film(cond.to(x.dtype)).reshape(b, 2 * self.blocks, 2, self.channels, 1, 1)
        f = F.leaky_relu(self.head(x), 0.1)
        for i in range(0, 2 * self.blocks, 2):  # residual blocks: conv, FiLM, act, conv, FiLM
            g = F.leaky_relu(self.body[i](f) * (1 + mod[:, i, 0]) + mod[:, i, 1], 0.1)
            f = f + self.body[i + 1](g) * (1 + mod[:, i + 1, 0]) + mod[:, i + 1, 1]
        out = self.tail(f) * PIXEL_UNIT  # [B, 24, h/4, w/4], 8-bit levels
        mid = NEIGHBOURS // 2
        cy = F.pixel_shuffle(out[:, : r * r], r)[:, 0]
        cu = F.pixel_shuffle(out[:, r * r : r * r + 4], r // 2)[:, 0]
        cv = F.pixel_shuffle(out[:, r * r + 4 :], r // 2)[:, 0]
        return y[:, mid] + cy, u[:, mid] + cu, v[:, mid] + cv
