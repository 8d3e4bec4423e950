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

    halo = 32  # rows and columns of context a tile takes: more than the network's reach

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

    def fills(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed fill the network corrects, ``[B, 1, T, H, W]`` (the mask search's proxy)."""
        return sample_fill(x[:, 0], x[:, 1])[0][:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fill, dens = sample_fill(x[:, 0], x[:, 1])
        return fill + quarter_trunk(self, torch.cat([x, fill[:, None], dens], dim=1))[:, 0]


def quarter_trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reconstruction networks' shared body on ``x`` ``[B, C, T, H, W]``: pixel-unshuffle
    by ``net.unshuffle``, ``net.head`` (1x1), the residual blocks of ``net.spatial`` and
    ``net.temporal``, ``net.tail``, pixel-shuffle back; ``[B, K, T, H, W]`` for a tail of K r r
    channels."""
    b, c, t, h, w = x.shape
    r = net.unshuffle
    y = F.pixel_unshuffle(x.transpose(1, 2).reshape(b * t, c, h, w), r)
    y = y.reshape(b, t, -1, h // r, w // r).transpose(1, 2)
    y = F.leaky_relu(net.head(y), 0.1)
    for spatial, temporal in zip(net.spatial, net.temporal, strict=True):
        y = y + temporal(F.leaky_relu(spatial(y), 0.1))
    y = net.tail(F.leaky_relu(y, 0.1))  # [B, K r r, T, h, w]
    k = y.shape[1] // (r * r)
    y = y.transpose(1, 2).reshape(b * t, k * r * r, h // r, w // r)
    return F.pixel_shuffle(y, r).reshape(b, t, k, h, w).transpose(1, 2)


# recon-v2: fills of the samples by push-pull (normalised convolution over a pyramid) within
# each frame and over windows of +-k frames, blended per pixel by the network
PUSH_PULL_LEVELS = 4  # pyramid levels (a coarsest pixel covers 16 x 16)
TEMPORAL_REACH = (0, 1, 2, 4, 8)  # each fill pools the samples of frames t - k .. t + k
_PYRAMID_TAPS = (1.0, 3.0, 3.0, 1.0)  # separable 4-tap kernel of each 2x reduction


def push_pull(num: torch.Tensor, den: torch.Tensor, levels: int = PUSH_PULL_LEVELS) -> torch.Tensor:
    """Scattered-data fill of ``num / den`` ``[N, 1, H, W]`` (sample sums and counts): where
    a pixel holds samples their mean, blended (by its count, up to 1) with the fill of the
    next coarser level of a pyramid of 4-tap reductions, bilinearly enlarged; 0 where no
    level holds any."""
    if levels == 0 or min(num.shape[-2:]) < 2:
        return torch.where(den > 0, num / den.clamp_min(1e-6), torch.zeros_like(num))
    taps = num.new_tensor(_PYRAMID_TAPS)
    kernel = (taps[:, None] * taps[None, :] / 16.0)[None, None]  # sums to 4: counts add up
    small_num, small_den = (
        F.conv2d(F.pad(a, (1, 2, 1, 2), mode="replicate"), kernel, stride=2) for a in (num, den)
    )
    coarse = push_pull(small_num, small_den, levels - 1)
    # by exactly 2, then cropped: the same grid for a plane and a tile of it at any size
    up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
    up = up[..., : num.shape[-2], : num.shape[-1]]
    own = torch.where(den > 0, num / den.clamp_min(1e-6), up)
    weight = den.clamp(max=1.0)
    return weight * own + (1 - weight) * up


def temporal_sums(x: torch.Tensor, reach: int) -> torch.Tensor:
    """Sums of ``x`` ``[B, T, H, W]`` over frames t - reach .. t + reach (zero beyond)."""
    if reach == 0:
        return x
    c = F.pad(x, (0, 0, 0, 0, reach + 1, reach)).cumsum(1)
    n = x.shape[1]
    return c[:, 2 * reach + 1 : 2 * reach + 1 + n] - c[:, :n]


def reach_fills(samples: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Push-pull fills ``[B, len(TEMPORAL_REACH), T, H, W]`` of the samples pooled over each
    TEMPORAL_REACH, and the sample counts they pooled at each pixel (same shape)."""
    b, t, h, w = samples.shape
    fills, counts = [], []
    for reach in TEMPORAL_REACH:
        num, den = temporal_sums(samples * mask, reach), temporal_sums(mask, reach)
        fill = push_pull(num.reshape(b * t, 1, h, w), den.reshape(b * t, 1, h, w))
        fills.append(fill.reshape(b, t, h, w))
        counts.append(den)
    return torch.stack(fills, dim=1), torch.stack(counts, dim=1)


class ReconstructionNetV2(nn.Module):
    """``recon-v2``: ReconstructionNet's interface (input ``[B, 6, T, H, W]``, output the
    residual ``[B, T, H, W]``, both in the same units). Fixed push-pull fills of the samples,
    one per frame and one for each window of +-1, 2, 4, 8 frames (a still scene's samples at
    other times fill a frame's gaps; a moving one's do not), go with the input through
    (2+1)-D residual blocks at a quarter of the resolution, whose output is, per pixel, the
    weights of a softmax blend of the fills and a correction added to the blend. An output
    pixel depends on input pixels up to 46 rows or columns away (the fills' pyramid and the
    blocks together): ``halo`` is what the mask codec's tiles take around them."""

    halo = 48  # a multiple of 16, so that a tile's pyramid and 4x4 cells lie on the plane's

    def __init__(self, channels: int = 48, blocks: int = 5, unshuffle: int = 4) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        r2 = unshuffle * unshuffle
        fills = len(TEMPORAL_REACH)
        self.head = nn.Conv3d((IN_CHANNELS + 2 * fills) * r2, channels, 1)
        self.spatial = nn.ModuleList(
            nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1)) for _ in range(blocks)
        )
        self.temporal = nn.ModuleList(
            nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)) for _ in range(blocks)
        )
        self.tail = nn.Conv3d(channels, (fills + 1) * r2, (1, 3, 3), padding=(0, 1, 1))
        with torch.no_grad():  # start as the blend's even mean, no correction
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()

    def fills(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed fills the network blends, ``[B, 5, T, H, W]`` (the mask search's proxy)."""
        return reach_fills(x[:, 0], x[:, 1])[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fills, counts = reach_fills(x[:, 0], x[:, 1])
        y = quarter_trunk(self, torch.cat([x, fills, torch.log1p(counts)], dim=1))
        blend = (torch.softmax(y[:, :-1], dim=1) * fills).sum(dim=1)
        return blend + y[:, -1]
