"""Spatial geometry of a GOP: padding to a coded size, down-scaling by s, bicubic up-scaling back.

The base layer codes a GOP padded (edge replication) to a multiple of 2·s and shrunk by s;
the decoder up-scales and crops back to the stream's size. Works for any frame size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .frames import Gop

MIN_BASE_SIDE = 64  # base-layer frames are at least this big: x265 corrupts its heap on tiny ones


def coded_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """The padded luma size of a GOP coded at ``scale``: multiples of 2·scale (4:2:0 after /s),
    and at least MIN_BASE_SIDE once shrunk by s (libx265 through PyAV aborted with heap
    corruption on 17 frames of 38x30 or 40x30 in a bare script, and on 46x38 and 48x32 frames
    in the test run; no size of 64 or more on both sides did)."""
    step = 2 * scale
    least = MIN_BASE_SIDE * scale
    return max(least, -(-height // step) * step), max(least, -(-width // step) * step)


def pad_gop(gop: Gop, height: int, width: int) -> Gop:
    """Edge-replicate a GOP to luma size (height, width) (even), chroma to half of it."""

    def pad(plane: np.ndarray, h: int, w: int) -> np.ndarray:
        dh, dw = h - plane.shape[1], w - plane.shape[2]
        if dh == 0 and dw == 0:
            return plane
        return np.pad(plane, ((0, 0), (0, dh), (0, dw)), mode="edge")

    ch, cw = height // 2, width // 2
    return Gop(pad(gop.y, height, width), pad(gop.u, ch, cw), pad(gop.v, ch, cw), gop.start)


def crop_gop(gop: Gop, height: int, width: int) -> Gop:
    """Cut a padded GOP back to luma size (height, width); chroma to ceil of half."""
    ch, cw = (height + 1) // 2, (width + 1) // 2
    return Gop(
        np.ascontiguousarray(gop.y[:, :height, :width]),
        np.ascontiguousarray(gop.u[:, :ch, :cw]),
        np.ascontiguousarray(gop.v[:, :ch, :cw]),
        gop.start,
    )


def _to_tensor(
    plane: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[T, H, W] uint8 -> [T, 1, H, W] float in 0..255."""
    return torch.from_numpy(plane).to(device).unsqueeze(1).to(dtype)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.squeeze(1).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def downscale_gop(gop: Gop, scale: int, device: torch.device | str = "cpu") -> Gop:
    """Shrink every plane by an integer factor with an s×s box average (an ideal 2× decimator
    for 4:2:0 content, and what the base layer's own chroma siting expects)."""
    if scale == 1:
        return gop
    dev = torch.device(device)
    out = [_to_uint8(F.avg_pool2d(_to_tensor(p, dev), scale)) for p in gop.planes()]
    return Gop(*out, start=gop.start)


def upscale_gop(gop: Gop, scale: int, device: torch.device | str = "cpu") -> Gop:
    """Enlarge every plane by an integer factor with bicubic interpolation (v0's decoder).

    In float64, so that a CPU and a GPU round every output pixel alike (float32 results can
    differ in the last bit, which can move a pixel across a rounding edge)."""
    if scale == 1:
        return gop
    dev = torch.device(device)
    out = []
    for plane in gop.planes():
        x = F.interpolate(_to_tensor(plane, dev, torch.float64), scale_factor=scale, mode="bicubic")
        out.append(_to_uint8(x))
    return Gop(*out, start=gop.start)
