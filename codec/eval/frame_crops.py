"""The report's frame comparison: a centre crop of one frame per point, and the pair to show."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from vcodec.eval.pareto import is_vcx
from vcodec.eval.report import BenchPoint
from vcodec.frames import COLOR_RANGE_PC, Gop, VideoInfo
from vcodec.io import ACCURATE, SWS_MATRIX, frame_from_planes

CROP_WIDTH = 320  # pixels: the compared window, at full resolution (the whole frame if smaller)
CROP_HEIGHT = 180  # pixels
# the BD-rate that names the strongest anchor: the one vcx gains least against
ANCHOR_METRIC = "psnr_yuv"
# pairs whose rates differ by up to this much more than the best match's (natural log of the
# rate ratio: 0.05 is about 5 %) count as matched too, and the one mid-curve is shown
RATE_SLACK = 0.05
MIN_KBPS = 1e-6  # kbps: the floor of a rate before its log
VCX = "vcx"  # the vcx codec compared when it ran; else the first vcx variant that did

CropKey = tuple[str, str, int]  # (clip, codec, q) of a point


@dataclass(frozen=True)
class FrameCrop:
    """A window of one frame in YUV 4:2:0: y [h, w], u and v [ceil(h/2), ceil(w/2)]."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    frame: int  # the frame's index in the clip
    left: int  # pixels: the window's top-left corner in the frame
    top: int

    def png(self, info: VideoInfo) -> bytes:
        """The crop as an RGB PNG, converted with the clip's YUV matrix and range."""
        full = info.color_range == COLOR_RANGE_PC
        rgb = frame_from_planes(self.y, self.u, self.v).reformat(
            format="rgb24",
            src_colorspace=SWS_MATRIX.get(info.colorspace, Colorspace.ITU601),
            src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
            dst_color_range=ColorRange.JPEG,
            interpolation=ACCURATE,
        )
        buffer = io.BytesIO()
        rgb.to_image().save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


def middle_frame(gops: Sequence[Gop]) -> int:
    return sum(g.n_frames for g in gops) // 2


def centre_crop(gops: Sequence[Gop], frame: int) -> FrameCrop:
    """A copy of the CROP_WIDTH x CROP_HEIGHT window at the centre of frame ``frame`` (its
    index over the GOPs), the window at even offsets so that chroma lines up."""
    index = frame
    for gop in gops:
        if index < gop.n_frames:
            break
        index -= gop.n_frames
    else:
        raise IndexError(f"frame {frame} is past the GOPs' end")
    height, width = min(CROP_HEIGHT, gop.height), min(CROP_WIDTH, gop.width)
    top, left = (gop.height - height) // 2 & ~1, (gop.width - width) // 2 & ~1
    ct, cl, ch, cw = top // 2, left // 2, (height + 1) // 2, (width + 1) // 2
    return FrameCrop(
        y=gop.y[index, top : top + height, left : left + width].copy(),
        u=gop.u[index, ct : ct + ch, cl : cl + cw].copy(),
        v=gop.v[index, ct : ct + ch, cl : cl + cw].copy(),
        frame=frame,
        left=left,
        top=top,
    )


@dataclass(frozen=True)
class Pair:
    """The points of one clip shown side by side: vcx's and an anchor's at about one rate."""

    vcx: BenchPoint
    anchor: BenchPoint
    why: str  # how the anchor was chosen, for the report's caption


def pick_pair(
    points: Sequence[BenchPoint], bd_rows: Sequence[Mapping[str, Any]], clip: str
) -> Pair | str:
    """The vcx point and the anchor point of the nearest rates on ``clip``, the anchor the
    classical codec vcx gains least against (its BD-rate on ANCHOR_METRIC), else any; or a
    sentence saying why there is no pair."""
    curves: dict[str, list[BenchPoint]] = {}
    for p in points:
        if p.clip == clip:
            curves.setdefault(p.codec, []).append(p)
    vcx_codecs = [c for c in curves if is_vcx(c)]
    anchors = [c for c in curves if not is_vcx(c)]
    if not vcx_codecs or not anchors:
        missing = "no vcx codec" if not vcx_codecs else "no classical anchor"
        return f"The bench ran {missing} on {clip}: nothing to compare."
    vcx = VCX if VCX in vcx_codecs else vcx_codecs[0]
    found = {
        r["anchor"]: r["bd_rate_pct"]
        for r in bd_rows
        if r["clip"] == clip and r["codec"] == vcx and r["metric"] == ANCHOR_METRIC
        if r["anchor"] in anchors and r["bd_rate_pct"] is not None
    }
    if found:
        best = max(found, key=found.__getitem__)
        why = f"{best}: the anchor {vcx} gains least against (BD-rate {found[best]:+.2f} %)"
        candidates = curves[best]
    else:
        why = "the anchor point nearest in rate (no BD-rate: too few points)"
        candidates = [p for codec in anchors for p in curves[codec]]
    return Pair(*_matched(curves[vcx], candidates), why)


def _log_rate(point: BenchPoint) -> float:
    return math.log(max(point.kbps, MIN_KBPS))


def _matched(
    vcx: Sequence[BenchPoint], anchor: Sequence[BenchPoint]
) -> tuple[BenchPoint, BenchPoint]:
    """The (vcx, anchor) points of the nearest rates; of pairs within RATE_SLACK of that, the
    one whose vcx point is nearest the middle of vcx's rates (the top of a curve, where every
    codec looks clean, shows less than its middle)."""
    pairs = [(a, b, abs(_log_rate(a) - _log_rate(b))) for a in vcx for b in anchor]
    best = min(gap for _, _, gap in pairs)
    middle = float(np.median([_log_rate(p) for p in vcx]))
    close = [(a, b) for a, b, gap in pairs if gap <= best + RATE_SLACK]
    return min(close, key=lambda ab: abs(_log_rate(ab[0]) - middle))
