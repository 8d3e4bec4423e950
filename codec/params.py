"""Per-GOP coding parameters (the scale s), their side info, and the parameter module (seed 004)
that picks s from cheap features of the GOP."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.bitstream.errors import MalformedError
from vcodec.models.registry import load

from .entropy import FrequencyTable, SymbolDecoder, SymbolEncoder
from .frames import Gop

SCALES = (1, 2)  # spatial down-scaling factors a GOP may use; side info codes the index
SCALE_TABLE = FrequencyTable.uniform(len(SCALES))
# A GOP at half size is coded at a lower QP, so that --qp keeps a smooth rate: at s = 2 with
# qp - 5 the rate lands next to the s = 1 rate at the same --qp (bikes, qp 42: 0.0118 vs 0.0138
# bpp), where it would drop 3x with no offset.
BASE_QP_OFFSET = {1: 0, 2: 5}


# How much of the post-processing network's correction a GOP takes (output = base + a (net -
# base)); the encoder picks the a with the least error, since the network trained on CPU
# helps some content and hurts other (models/README.md). Index 0 (a = 0) skips the network.
POST_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
POST_TABLE = FrequencyTable.uniform(len(POST_STRENGTHS))
# Temporal scaling: a GOP at step 2 codes its even frames and its last in the base layer; the
# decoder predicts the others from their decoded neighbours (codec/predict.py)
STEPS = (1, 2)
STEP_TABLE = FrequencyTable.uniform(len(STEPS))


@dataclass(frozen=True)
class GopParams:
    """What the decoder must know about one GOP beyond the base layer."""

    scale: int = 1
    post: int | None = None  # index into POST_STRENGTHS; None: the stream has no post-processing
    step: int | None = None  # temporal step (STEPS); None: the stream has no frame prediction

    @property
    def strength(self) -> float:
        return 0.0 if self.post is None else POST_STRENGTHS[self.post]

    def pack(self) -> bytes:
        enc = SymbolEncoder()
        enc.encode(SCALES.index(self.scale), SCALE_TABLE)
        if self.post is not None:
            enc.encode(self.post, POST_TABLE)
        if self.step is not None:
            enc.encode(STEPS.index(self.step), STEP_TABLE)
        return enc.finish()

    @classmethod
    def unpack(cls, data: bytes, post: bool = False, predict: bool = False) -> GopParams:
        """``post``, ``predict``: whether the stream names the post-processing network and the
        frame-prediction network (each adds a symbol: post strength, then temporal step)."""
        dec = SymbolDecoder(data)
        index = dec.decode(SCALE_TABLE)
        if index >= len(SCALES):
            raise MalformedError(f"GOP side info: scale index {index} out of range")
        strength = dec.decode(POST_TABLE) if post else None
        if strength is not None and strength >= len(POST_STRENGTHS):
            raise MalformedError(f"GOP side info: post strength index {strength} out of range")
        step = dec.decode(STEP_TABLE) if predict else None
        if step is not None and step >= len(STEPS):
            raise MalformedError(f"GOP side info: temporal step index {step} out of range")
        return cls(scale=SCALES[index], post=strength, step=None if step is None else STEPS[step])

    @property
    def temporal_step(self) -> int:
        return self.step or 1


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

    @torch.no_grad()
    def scale(self, gop: Gop, qp: int) -> int:
        """s for ``gop`` under --qp ``qp``; 1 below the QPs the module was trained at."""
        if qp < PARAMS_MIN_QP:
            return 1
        return SCALES[int(self.net(gop_features(gop, qp)[None]).argmax())]
