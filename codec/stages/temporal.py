"""Temporal scaling (seed 001): GOPs whose base layer carries only some of their frames, and
the frame-prediction network that synthesises the others from their decoded neighbours.

At step k the base layer codes a GOP's frames t with t mod k = 0 and its last one; every other
frame lies between two coded frames a < t < b and starts as their linear interpolation (at
step 2 the rounded mean of t - 1 and t + 1). A stream that names ``predict-v1`` has the
decoder refine it on (t - 1, guess, t + 1): the post-processing network's architecture, trained
by `vcodec train predict` on one-frame gaps, so its encoder keeps to step 2. The encoder picks
the longest step (8, 4, 2) whose dropped source frames are that predictable
(TEMPORAL_MARGIN), which is a still scene.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from vcodec.frames import Gop, yuv_mse
from vcodec.lazy import lazy_module
from vcodec.models.registry import load
from vcodec.stages.post import PostProcessor
from vcodec.stages.scale import gop_features
from vcodec.stages.stage import GopContext, Stage

torch = lazy_module("torch")
nn = lazy_module("torch.nn")

# Temporal scaling: a GOP at step k codes its frames t with t mod k = 0 and its last in the
# base layer; the decoder makes the others from the coded frames around them. Steps 4 and 8
# (format version 8 on) are for the stillest GOPs, whose source even a 3- or 7-frame gap predicts.
STEPS = (1, 2, 4, 8)
PREDICT_MODEL = "predict-v1"  # the registry name a stream's header carries when the stage is on
# A GOP goes to step k when the interpolation of the source frames it drops errs no more than
# the base layer's own coded frames (this share of their PSNR-YUV-weighted MSE on the last
# decoded GOP): the dropped frames then cost what coding them would, and their bits are saved.
# With steps 4 and 8, chosen on four training clips among 0.35, 0.5, 0.75, 1.0 and 1.5
# (-8.17, -8.71, -9.04, -9.14, -8.68 % against x265 medium; models/README.md)
TEMPORAL_MARGIN = 1.0
# --flow's moving GOPs keep the old margin: a warped neighbour brings its own coding error
# along (the mean of two still neighbours averages theirs down), and at 1.0 a panning test
# scene lost 1.75 dB for 19 % fewer bytes
FLOW_MARGIN = 0.5
# log2 of the base layer's yuv_mse on a GOP, linear in base_error_inputs: fitted on the
# training clips' GOPs at qp 22-47 and scales 1 and 2, lowered to the residuals' 10th percentile
# (benchmarks/base_error_fit.py: above the truth on 0.7 % of the held-out GOPs, half the truth
# at the median, where quietest_base_error alone is a fourteenth of it)
BASE_ERROR_FIT = (-8.876, 7.138, 2.206, -3.086, 14.710)
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST  # OpenCV's DIS flow: 4-7 ms a frame at 640x360


def expected_base_error(gop: Gop, base_qp: int, scale: int) -> float:
    """A low guess of the base layer's yuv_mse on ``gop`` at ``base_qp`` and ``scale``, for
    GOPs the encoder must decide before it has decoded any (x265's look-ahead holds back about
    three GOPs, so on a short clip that is every GOP): the larger of two low guesses,
    BASE_ERROR_FIT's fit of the content and quietest_base_error."""
    fit = 2.0 ** (base_error_inputs(gop, base_qp, scale) @ np.asarray(BASE_ERROR_FIT))
    return max(float(fit), quietest_base_error(base_qp))


def quietest_base_error(base_qp: int) -> float:
    """The least yuv_mse x265 medium reached at ``base_qp`` on the held-out clips (intel_car, a
    static parking lot: 0.96, 2.07, 5.08 at qp 27, 37, 47), below which no content guess goes:
    the fit's quantile undershoots such a scene, and its GOPs would then keep frames they
    dropped with this guess alone (intel_car -24.3 % against x265 instead of -28.6 %)."""
    return 0.9 * 2.0 ** ((base_qp - 27) / 8.5)


def base_error_inputs(gop: Gop, base_qp: int, scale: int) -> np.ndarray:
    """What BASE_ERROR_FIT weighs: [1, base QP / 51, scale - 1, the detail a 2x down- and
    up-scaling loses, texture] (the last two: the parameter module's log features)."""
    features = gop_features(gop, base_qp).numpy().astype(np.float64)
    return np.array([1.0, base_qp / 51, scale - 1, features[1], features[3]])


def coded_frames(n_frames: int, step: int) -> list[int]:
    """The frames of an ``n_frames`` GOP that the base layer carries at ``step``."""
    if step == 1:
        return list(range(n_frames))
    return [t for t in range(n_frames) if t % step == 0 or t == n_frames - 1]


def dropped_frames(n_frames: int, step: int) -> list[int]:
    """The frames of an ``n_frames`` GOP that the decoder predicts at ``step``."""
    return sorted(set(range(n_frames)) - set(coded_frames(n_frames, step)))


def midpoints(gop: Gop, step: int) -> Gop:
    """``gop`` with every frame the base layer drops at ``step`` replaced by the rounded linear
    interpolation between the coded frames before and after it (at step 2 their mean)."""
    planes = [p.copy() for p in gop.planes()]
    dropped = dropped_frames(gop.n_frames, step)
    if dropped:
        for p, made in zip(planes, interpolated(gop, step).planes(), strict=True):
            p[dropped] = made
    return Gop(*planes, start=gop.start)


def interpolated(gop: Gop, step: int) -> Gop:
    """The frames of ``gop`` dropped at ``step`` (at least one), in order, each the
    interpolation between the coded frames around it."""
    spans = gaps(gop.n_frames, step)
    return Gop(
        *(np.stack([between(p[a], p[b], t - a, b - a) for t, a, b in spans]) for p in gop.planes())
    )


def gaps(n_frames: int, step: int) -> list[tuple[int, int, int]]:
    """(t, a, b) for every frame t dropped at ``step``: a and b are the coded frames before and
    after it."""
    coded = coded_frames(n_frames, step)
    return [
        (t, max(c for c in coded if c < t), min(c for c in coded if c > t))
        for t in dropped_frames(n_frames, step)
    ]


def between(a: np.ndarray, b: np.ndarray, offset: int, span: int) -> np.ndarray:
    """The frame ``offset`` of ``span`` frames from uint8 frame ``a`` to ``b``, linearly
    interpolated and rounded half up in integers: ``(a (span - offset) + b offset + span // 2)
    // span`` (at span 2 the rounded mean ``(a + b + 1) >> 1``)."""
    mix = a.astype(np.uint16) * (span - offset) + b.astype(np.uint16) * offset + span // 2
    return (mix // span).astype(np.uint8)


def flow_midpoints(gop: Gop, step: int) -> Gop:
    """``gop`` with every frame the base layer drops at ``step`` interpolated half-way along
    the optical flow between its two neighbours (OpenCV's DIS flow on luma, both ways; each
    neighbour warped half-way, the two averaged; chroma follows the luma flow)."""
    planes = [p.copy() for p in gop.planes()]
    for t in dropped_frames(gop.n_frames, step):
        before, after = (tuple(p[k] for p in gop.planes()) for k in (t - 1, t + 1))
        for p, mid in zip(planes, flow_midpoint(before, after), strict=True):
            p[t] = mid
    return Gop(*planes, start=gop.start)


def flow_midpoint(before: tuple[np.ndarray, ...], after: tuple[np.ndarray, ...]) -> list:
    """The (y, u, v) frame half-way between two frames' planes, along their optical flow."""
    dis = _dis()
    forward, backward = dis.calc(before[0], after[0], None), dis.calc(after[0], before[0], None)
    out = []
    for a, b in zip(before, after, strict=True):
        h, w = a.shape
        fwd, bwd = forward, backward
        if (h, w) != forward.shape[:2]:  # chroma: the luma flow at its size, in its pixels
            sy, sx = h / forward.shape[0], w / forward.shape[1]
            fwd, bwd = (cv2.resize(f, (w, h)) * np.float32([sx, sy]) for f in (forward, backward))
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        wa = cv2.remap(a, gx + 0.5 * bwd[..., 0], gy + 0.5 * bwd[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        wb = cv2.remap(b, gx + 0.5 * fwd[..., 0], gy + 0.5 * fwd[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        out.append(((wa.astype(np.uint16) + wb + 1) // 2).astype(np.uint8))
    return out


@cache
def _dis():
    return cv2.DISOpticalFlow_create(FLOW_PRESET)


def prediction_error(
    gop: Gop, step: int, where: np.ndarray | None = None, flow: bool = False
) -> float:
    """yuv_mse of ``midpoints`` (``flow_midpoints`` with ``flow``) on the frames dropped at
    ``step`` (0 if none), over the pixels ``where`` (bool [H, W]) when given."""
    dropped = dropped_frames(gop.n_frames, step)
    if not dropped:
        return 0.0
    if flow:
        return yuv_mse(gop, _select(flow_midpoints(gop, step), dropped), where, dropped)
    return yuv_mse(gop, interpolated(gop, step), where, dropped)


def still_step(gop: Gop, limit: float, where: np.ndarray | None = None, longest: int = 8) -> int:
    """The longest step of STEPS, up to ``longest``, whose dropped source frames the
    interpolation between the coded frames around them predicts within ``limit`` (yuv_mse,
    over the pixels ``where`` when given), each step tried only if the shorter one passed (a
    moving GOP pays for one look); 1 if not even step 2's."""
    step = 1
    for longer in STEPS[1:] if gop.n_frames >= 3 else ():
        if longer > longest or prediction_error(gop, longer, where) > limit:
            break
        step = longer
    return step


def coded_part(gop: Gop, step: int) -> Gop:
    """The frames of ``gop`` that its base layer carries at ``step``."""
    return gop if step == 1 else _select(gop, coded_frames(gop.n_frames, step))


def _select(gop: Gop, frames: list[int]) -> Gop:
    return Gop(gop.y[frames], gop.u[frames], gop.v[frames], gop.start)


def spread(coded: Gop, n_frames: int, step: int, flow: bool = False) -> Gop:
    """The whole GOP of ``n_frames`` from its ``coded`` frames (those of
    coded_frames(n_frames, step), upscaled and cropped), each dropped frame the rounded mean of
    its neighbours, or with ``flow`` their interpolation along the optical flow."""
    keep = coded_frames(n_frames, step)
    if coded.n_frames != len(keep):
        raise ValueError(f"{coded.n_frames} coded frames for {len(keep)} places")
    if step == 1:
        return coded
    slots = np.zeros(n_frames, dtype=np.int64)
    slots[keep] = np.arange(len(keep))
    whole = Gop(*(p[slots] for p in coded.planes()), start=coded.start)
    return flow_midpoints(whole, step) if flow else midpoints(whole, step)


class FramePredictor:
    """Refines the frames a GOP's base layer dropped, with the shipped ``predict-v1``."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype | None = None,
        net: torch.nn.Module | None = None,
    ) -> None:
        self.run = PostProcessor(device, dtype, net if net is not None else load(PREDICT_MODEL))

    def __call__(self, coded: Gop, n_frames: int, step: int, base_qp: int, scale: int) -> Gop:
        """The whole GOP of ``n_frames`` from its ``coded`` frames (as ``spread``), whose base
        layer ran at ``base_qp`` and ``scale``."""
        guess = spread(coded, n_frames, step)
        if step == 1:
            return guess
        dropped = dropped_frames(n_frames, step)
        synthesised = self.run(guess, base_qp, scale, dropped)
        planes = [g.copy() for g in guess.planes()]
        for p, s in zip(planes, synthesised.planes(), strict=True):
            p[dropped] = s
        return Gop(*planes, start=coded.start)


class TemporalStage(Stage):
    """Seed 001's temporal scaling as a stage: a GOP whose source is predictable from the
    frames around (a static scene) drops 1 frame in 2, 3 in 4 or 7 in 8 from the base layer,
    and the decoder makes them from the decoded frames around them (their interpolation,
    refined by ``predict-v1`` when the stream names it). Its payload is the GOP's temporal
    mode symbol."""

    name, seed, side_info = "temporal", "001", True

    def __init__(
        self,
        device: torch.device,
        *,
        drop: bool = False,
        flow: bool = False,
        model: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.drop = drop  # encoder: whether GOPs may drop frames at all
        self.flow = flow  # encoder: whether a moving GOP may drop them (flow interpolation)
        self.predictor = FramePredictor(device, dtype) if model else None
        self.base_error: float | None = None  # the base layer's yuv_mse on the last GOP

    def models(self) -> tuple[str, ...]:
        return (PREDICT_MODEL,) if self.predictor is not None else ()

    def before_base(self, source: Gop, ctx: GopContext) -> Gop:
        with self.timed():
            ctx.step, ctx.extra["flow"] = self._mode(source, ctx)
            return coded_part(source, ctx.step)

    def _mode(self, gop: Gop, ctx: GopContext) -> tuple[int, bool]:
        """(step, flow): step 2, then 4, then 8 while the source's dropped frames are more
        predictable than the base layer's own error (TEMPORAL_MARGIN x that of the last
        decoded GOP, or of a low guess before any) from the coded frames around them, or else
        (``flow``, step 2) along their optical flow; else step 1. With regions of interest,
        their pixels must be that predictable: the bits they are given buy nothing on a frame
        the decoder predicts."""
        if not self.drop or gop.n_frames < 3:
            return 1, False
        error = self.base_error
        if error is None:
            error = expected_base_error(gop, ctx.base_qp, ctx.scale)
        roi, where = ctx.roi, None
        if roi is not None and roi.cells.any() and not roi.cells.all():
            where = roi.pixels(gop.height, gop.width)
        # not past 2 with predict-v1 (trained on one-frame gaps; the flow is defined on those)
        step = still_step(gop, TEMPORAL_MARGIN * error, where, 8 if self.predictor is None else 2)
        if step > 1:
            return step, False
        if self.flow and prediction_error(gop, 2, where, flow=True) <= FLOW_MARGIN * error:
            return 2, True
        return 1, False

    def encode_gop(self, source: Gop, prediction: Gop, ctx: GopContext) -> tuple[Gop, dict]:
        if self.drop:  # the next GOP's yardstick (_mode)
            with self.timed():
                coded = coded_frames(source.n_frames, ctx.step)
                self.base_error = yuv_mse(source, prediction, frames=coded)
        self._used |= ctx.step > 1
        mode = {"step": ctx.step, "flow": ctx.extra["flow"]}
        return self._fill(prediction, ctx.step, mode["flow"], ctx), mode

    def decode_gop(self, prediction: Gop, payload, ctx: GopContext) -> Gop:
        """``payload``: the GOP's GopParams (its temporal step, and whether along the flow)."""
        return self._fill(prediction, payload.temporal_step, bool(payload.flow), ctx)

    def _fill(self, coded: Gop, step: int, flow: bool, ctx: GopContext) -> Gop:
        with self.timed():
            if self.predictor is None or flow:
                return spread(coded, ctx.n_frames, step, flow)
            return self.predictor(coded, ctx.n_frames, step, ctx.base_qp, ctx.scale)
