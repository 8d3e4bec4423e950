"""Spatial scaling (seed 004): the parameter module that picks the scale s from cheap features
of a GOP, and the geometry of a GOP coded at s: padding to a coded size, down-scaling by s,
bicubic up-scaling back (any frame size works)."""

from __future__ import annotations

import copy

import numpy as np

from vcodec.bitstream.container import Segment, StreamHeader
from vcodec.errors import MalformedError
from vcodec.frames import Gop
from vcodec.lazy import lazy_module, no_grad
from vcodec.models.registry import load
from vcodec.stages.stage import GopContext, Stage

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")
nn = lazy_module("torch.nn")

SCALES = (1, 2)  # spatial down-scaling factors a GOP may use; side info codes the index
# A GOP at half size is coded at a lower QP, so that --qp keeps a smooth rate: at s = 2 with
# qp - 5 the rate lands next to the s = 1 rate at the same --qp (bikes, qp 42: 0.0118 vs 0.0138
# bpp), where it would drop 3x with no offset.
BASE_QP_OFFSET = {1: 0, 2: 5}


def base_qp(qp: int, scale: int) -> int:
    """The base layer's QP (CRF) for a GOP at ``scale`` under the user's --qp."""
    return max(0, qp - BASE_QP_OFFSET[scale])


PARAMS_MODEL = "params-v2"  # the encoder's parameter module (the decoder never needs it)
PARAMS_MIN_QP = 22  # the lowest --qp of its training database (train/params.py); below, s = 1
FEATURE_FRAMES = 4  # luma frames of a GOP the features look at (evenly spread)


def gop_features(gop: Gop, qp: int) -> torch.Tensor:
    """The parameter module's input ``[FEATURES]`` for a GOP under ``--qp``, all about 0..1:
    qp / 51; log10 of 1 + the luma MSE a 2x down- and bicubic up-scaling costs (the detail
    s = 2 loses before any coding); log10 of 1 + the mean squared frame difference (motion);
    log10 of 1 + the mean squared horizontal and vertical gradient (texture); log2(height)/12.
    Each log10 is divided by 4."""
    pick = np.linspace(0, gop.n_frames - 1, min(FEATURE_FRAMES, gop.n_frames)).round().astype(int)
    y = torch.from_numpy(gop.y[pick]).float()[:, None]
    h, w = y.shape[-2:]
    hh, ww = h - h % 2, w - w % 2
    yy = y[..., :hh, :ww]
    if hh >= 2 and ww >= 2:
        up = F.interpolate(F.avg_pool2d(yy, 2), scale_factor=2, mode="bicubic")
        lost = float((up - yy).square().mean())
    else:
        lost = 0.0
    motion = float((y[1:] - y[:-1]).square().mean()) if len(y) > 1 else 0.0
    grad = float(
        (y[..., :, 1:] - y[..., :, :-1]).square().mean()
        + (y[..., 1:, :] - y[..., :-1, :]).square().mean()
    ) if h > 1 and w > 1 else 0.0  # fmt: skip
    logs = [np.log10(1 + v) / 4 for v in (lost, motion, grad)]
    return torch.tensor([qp / 51, *logs, np.log2(max(h, 1)) / 12], dtype=torch.float32)


class ParamModule:
    """Picks a GOP's scale with the shipped parameter module (or a given network)."""

    def __init__(self, net: torch.nn.Module | None = None) -> None:
        self.net = copy.deepcopy(net if net is not None else load(PARAMS_MODEL)).float().eval()

    @no_grad
    def scale(self, gop: Gop, qp: int) -> int:
        """s for ``gop`` under --qp ``qp``; 1 below the QPs the module was trained at."""
        if qp < PARAMS_MIN_QP:
            return 1
        return SCALES[int(self.net(gop_features(gop, qp)[None]).argmax())]


UPSCALE_FRAMES = 2  # frames up-scaled at once (float64: bounded memory at 4K)
MIN_BASE_SIDE = 64  # base-layer frames are at least this big: x265 corrupts its heap on tiny ones


def check_base_size(
    segment: Segment, header: StreamHeader, scale: int, gop: int
) -> tuple[int, int]:
    """The base layer's (height, width) for a GOP at ``scale``; MalformedError when its
    SEGMENT says another size (decoder and `info` alike)."""
    coded_h, coded_w = coded_size(header.height, header.width, scale)
    expected = (coded_h // scale, coded_w // scale)
    if (segment.height, segment.width) != expected:
        raise MalformedError(f"GOP {gop}: base layer size does not match its scale")
    return expected


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
    plane: np.ndarray, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """[T, H, W] uint8 -> [T, 1, H, W] float in 0..255."""
    return torch.from_numpy(plane).to(device).unsqueeze(1).to(dtype or torch.float32)


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
        parts = []
        for first in range(0, len(plane), UPSCALE_FRAMES):  # bounded memory at any size
            x = _to_tensor(plane[first : first + UPSCALE_FRAMES], dev, torch.float64)
            parts.append(_to_uint8(F.interpolate(x, scale_factor=scale, mode="bicubic")))
        out.append(np.concatenate(parts))
    return Gop(*out, start=gop.start)


class ScaleStage(Stage):
    """Seed 004's spatial scaling as a stage: the stream's scale s (``--scale``, or the
    parameter module's choice on the first GOP), the base layer coded at 1/s, the decoder's
    bicubic up-scaling back. Its payload is the GOP's scale symbol."""

    name, seed, side_info = "scale", "004", True

    def __init__(self, scale: str, qp: int, height: int, width: int, device, auto: bool) -> None:
        super().__init__()
        self.scale, self.qp, self.size, self.device = scale, qp, (height, width), device
        self.params = ParamModule() if auto and scale == "auto" else None
        self.stream_scale: int | None = None
        self._used = True  # the scale symbol is in every GOP's side info

    def choose(self, gop: Gop) -> int:
        """--scale, or with auto the parameter module's choice on the stream's first GOP, kept
        for the whole stream: the module was trained on whole-stream choices, and each change
        of scale starts a segment (an I-frame). Without the module (--roi), auto is s = 1: the
        regions of interest keep their full resolution (seed 002)."""
        if self.scale != "auto":
            return int(self.scale)
        if self.stream_scale is None:
            with self.timed():
                self.stream_scale = self.params.scale(gop, self.qp) if self.params else 1
        return self.stream_scale

    def before_base(self, source: Gop, ctx: GopContext) -> Gop:
        with self.timed():
            height, width = coded_size(*self.size, ctx.scale)
            return downscale_gop(pad_gop(source, height, width), ctx.scale, self.device)

    def encode_gop(self, source: Gop, prediction: Gop, ctx: GopContext) -> tuple[Gop, dict]:
        return self.decode_gop(prediction, None, ctx), {"scale": ctx.scale}

    def decode_gop(self, prediction: Gop, payload, ctx: GopContext) -> Gop:
        """``prediction``: the GOP's decoded base-layer frames, at 1/``ctx.scale``."""
        with self.timed():
            return crop_gop(upscale_gop(prediction, ctx.scale, self.device), *self.size)
