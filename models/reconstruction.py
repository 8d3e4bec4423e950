"""The reconstruction network (seed 000): masked samples + mask + prediction -> GOP residual."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 6  # samples, mask, prediction, pure flag, chroma flag, quantiser step
RESIDUAL_UNIT = 64.0  # 8-bit levels per unit of the network's residual channels
STEP_UNIT = 32.0  # 8-bit levels per unit of the step channel
# Box windows (frames, rows, columns) of the normalised-convolution fill, fine to coarse.
FILL_WINDOWS = ((1, 3, 3), (3, 5, 5), (5, 9, 9), (9, 17, 17))
EXTRA_CHANNELS = 1 + len(FILL_WINDOWS)  # the fill and the sample density of each window


def box_mean(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """Box average of ``x`` ``[B, T, H, W]`` over ``window`` (odd sizes), zero padded.

    Separable, each axis by a difference of cumulative sums: the cost does not grow with the
    window (avg_pool3d's does, and it made this fill as slow as the whole network).
    """
    y = x
    for dim, k in zip((1, 2, 3), window, strict=True):
        if k > 1:
            pad = [0] * 6  # F.pad order: last dim first
            pad[2 * (3 - dim)] = pad[2 * (3 - dim) + 1] = k // 2
            pad[2 * (3 - dim)] += 1  # a leading zero, so that c[i + k] - c[i] is a window sum
            c = F.pad(y, pad).cumsum(dim)
            n = y.shape[dim]
            y = (c.narrow(dim, k, n) - c.narrow(dim, 0, n)) / k
    return y


def sample_fill(samples: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised convolution: each position takes the mean of the samples in the finest window
    that holds any (0 where none does). Returns the fill ``[B, T, H, W]`` and the density of
    samples in each window ``[B, len(FILL_WINDOWS), T, H, W]``."""
    fill = torch.zeros_like(samples)
    dens = []
    for window in reversed(FILL_WINDOWS):
        num, den = box_mean(samples * mask, window), box_mean(mask, window)
        fill = torch.where(den > 1e-6, num / den.clamp_min(1e-6), fill)
        dens.append(den)
    return fill, torch.stack(dens[::-1], dim=1)


class ReconstructionNet(nn.Module):
    """Whole-GOP reconstruction, (2+1)-D convolutions at a quarter of the plane's resolution.

    Input ``[B, 6, T, H, W]`` (H, W multiples of ``unshuffle``), channels in this order:
    the dequantised residual samples ``(x - p) / RESIDUAL_UNIT`` where the mask is 1 (0
    elsewhere), the mask, the prediction ``(p - 128) / RESIDUAL_UNIT``, a pure-mode flag, a
    chroma flag and the quantiser step ``/ STEP_UNIT``. Output ``[B, T, H, W]``: the residual
    ``(x - p) / RESIDUAL_UNIT`` everywhere. A fixed normalised-convolution fill of the samples
    (``sample_fill``) is both an input and the base the network corrects. Every patch and every
    mask goes through the same convolutions, so there are no block seams.
    """

    def __init__(self, channels: int = 32, blocks: int = 4, unshuffle: int = 4) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        r2 = unshuffle * unshuffle
        self.head = nn.Conv3d((IN_CHANNELS + EXTRA_CHANNELS) * r2, channels, 1)
        self.spatial = nn.ModuleList(
            nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1)) for _ in range(blocks)
        )
        self.temporal = nn.ModuleList(
            nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)) for _ in range(blocks)
        )
        self.tail = nn.Conv3d(channels, r2, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fill, dens = sample_fill(x[:, 0], x[:, 1])
        x = torch.cat([x, fill[:, None], dens], dim=1)
        b, c, t, h, w = x.shape
        r = self.unshuffle
        y = F.pixel_unshuffle(x.transpose(1, 2).reshape(b * t, c, h, w), r)
        y = y.reshape(b, t, -1, h // r, w // r).transpose(1, 2)
        y = F.leaky_relu(self.head(y), 0.1)
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            y = y + temporal(F.leaky_relu(spatial(y), 0.1))
        y = self.tail(F.leaky_relu(y, 0.1))  # [B, r*r, T, h, w]
        y = y.transpose(1, 2).reshape(b * t, r * r, h // r, w // r)
        return fill + F.pixel_shuffle(y, r).reshape(b, t, h, w)
