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
        self.film = _film(channels, 4 * blocks * channels)
        self.tail = _zero_conv(channels, 3)

    def forward(
        self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = fold(y, u, v)
        b = x.shape[0]
        mod = self.film(cond.to(x.dtype)).reshape(b, 2 * self.blocks, 2, self.channels, 1, 1)
        f = F.leaky_relu(self.head(x), 0.1)
        for i in range(0, 2 * self.blocks, 2):  # residual blocks: conv, FiLM, act, conv, FiLM
            g = F.leaky_relu(self.body[i](f) * (1 + mod[:, i, 0]) + mod[:, i, 1], 0.1)
            f = f + self.body[i + 1](g) * (1 + mod[:, i + 1, 0]) + mod[:, i + 1, 1]
        return _unfold(self.tail(f) * PIXEL_UNIT, y, u, v)


class LitePostNet(nn.Module):
    """``post-v2``: PostNet's interface (``forward(y, u, v, cond)``, the same shapes) inside
    DESIGN §9's decode budget of ~500 multiply-adds per luma pixel (``multiply_adds``).

    At a quarter of luma resolution like PostNet, but with no full 3x3 convolution: a 1x1 head
    over the three frames' folded channels, ``blocks`` residual blocks of a depthwise 3x3 (the
    spatial context) and a 1x1 (the mixing), each FiLM-conditioned on QP and scale, and a 1x1
    tail back to the middle frame's 24 channels. The correction starts at zero.
    """

    def __init__(self, channels: int = 32, blocks: int = 3) -> None:
        super().__init__()
        self.channels, self.blocks = channels, blocks
        self.head = nn.Conv2d(NEIGHBOURS * FRAME_CHANNELS, channels, 1)
        self.spatial = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels) for _ in range(blocks)
        )
        self.mix = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(blocks))
        self.film = _film(channels, 2 * blocks * channels)
        self.tail = _zero_conv(channels, 1)

    def forward(
        self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _unfold(self.tail(self.features(y, u, v, cond)) * PIXEL_UNIT, y, u, v)

    def features(
        self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """What the 1x1 tail reads: ``[B, channels, H/4, W/4]`` (a per-stream refit of the
        tail is a least-squares problem in these: benchmarks/post_refit.py)."""
        x = fold(y, u, v)
        b = x.shape[0]
        mod = self.film(cond.to(x.dtype)).reshape(b, self.blocks, 2, self.channels, 1, 1)
        f = F.leaky_relu(self.head(x), 0.1)
        for i in range(self.blocks):
            g = F.leaky_relu(self.spatial[i](f) * (1 + mod[:, i, 0]) + mod[:, i, 1], 0.1)
            f = f + self.mix[i](g)
        return f


def _film(channels: int, outputs: int) -> nn.Sequential:
    """The condition -> every block's FiLM scales and shifts ([B, outputs])."""
    return nn.Sequential(
        nn.Linear(CONDITIONS, channels), nn.LeakyReLU(0.1), nn.Linear(channels, outputs)
    )


def _zero_conv(channels: int, kernel: int) -> nn.Conv2d:
    """The tail back to one frame's FRAME_CHANNELS, zero at first: the network starts as the
    identity."""
    conv = nn.Conv2d(channels, FRAME_CHANNELS, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def fold(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Three frames' planes (PostNet's inputs) as one [B, 3 * 24, H/4, W/4] tensor, centred
    on 128 and in PIXEL_UNIT steps."""
    b, n, h, w = y.shape
    r = LUMA_UNSHUFFLE
    fold = [
        F.pixel_unshuffle(p.reshape(b * n, 1, *p.shape[-2:]), s)
        for p, s in ((y, r), (u, r // 2), (v, r // 2))
    ]
    x = torch.cat(fold, dim=1).reshape(b, n * FRAME_CHANNELS, h // r, w // r)
    return (x - 128.0) / PIXEL_UNIT


def _unfold(
    out: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The middle frame plus the correction ``out`` ([B, 24, H/4, W/4], 8-bit levels)."""
    r, mid = LUMA_UNSHUFFLE, NEIGHBOURS // 2
    cy = F.pixel_shuffle(out[:, : r * r], r)[:, 0]
    cu = F.pixel_shuffle(out[:, r * r : r * r + 4], r // 2)[:, 0]
    cv = F.pixel_shuffle(out[:, r * r + 4 :], r // 2)[:, 0]
    return y[:, mid] + cy, u[:, mid] + cu, v[:, mid] + cv


def multiply_adds(net: nn.Module) -> float:
    """The network's multiply-adds per luma pixel: every convolution's weights once per
    position of its (quarter-resolution) grid, i.e. divided by LUMA_UNSHUFFLE^2."""
    total = sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))
    return total / LUMA_UNSHUFFLE**2
