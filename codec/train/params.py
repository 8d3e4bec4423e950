"""`vcodec train params`: the parameter module, on the best scale found by coding GOPs both ways.

The database: the first frames of each clip, at each --qp, are coded as one stream (masks off,
post-processing on, as the encoder ships) at s = 1 and at s = 2; each way's RD cost
is J = D + lambda(qp) R (D: PSNR-YUV-weighted sum of squared errors, R: the stream's bits, lambda:
the base layer's own RD slope, `samples.base_lambda`: BASE_LAMBDA_FACTOR x the mask codec's
x264-style Lagrangian).
The module learns to pick the cheaper one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.models.params import ParamNet

from ..frames import GOP_SIZE, Gop, VideoInfo
from ..io import open_video
from ..metrics import PSNR_YUV_WEIGHTS
from ..params import PARAMS_MIN_QP, SCALES, gop_features
from ..samples import base_lambda
from .data import CPU, ArraySet, find_clips


@dataclass(frozen=True)
class ParamsDataConfig:
    frames: int = 64  # frames read from the start of each clip (full GOPs only)
    qps: tuple[int, ...] = (PARAMS_MIN_QP, 32, 37, 42, 47)  # the module says s = 1 below


@dataclass
class ParamsDatabase(ArraySet):
    """features: [N, FEATURES]; sse: [N, len(SCALES)] D of each scale; psnr: [N, len(SCALES)]
    PSNR-YUV; bits: [N, len(SCALES)]; qp: [N]; clip: [N] clip names."""

    features: np.ndarray
    sse: np.ndarray
    psnr: np.ndarray
    bits: np.ndarray
    qp: np.ndarray
    clip: np.ndarray

    @property
    def cost(self) -> np.ndarray:
        """J = D + base_lambda(qp) R, [N, len(SCALES)]."""
        lam = np.array([base_lambda(int(q)) for q in self.qp])
        return self.sse + lam[:, None] * self.bits


def code_segment(
    gops: list[Gop], info: VideoInfo, qp: int, scale: int
) -> tuple[float, float, float]:
    """(weighted SSE, PSNR-YUV, bits) of GOPs coded as one stream at ``qp`` and ``scale``."""
    from ..decoder import VcxDecoder
    from ..encoder import EncodeConfig, encode_gops

    buf = io.BytesIO()
    config = EncodeConfig(qp=qp, scale=str(scale), masks=False, device="cpu")
    encode_gops(iter(gops), info, buf, config)
    bits = 8.0 * len(buf.getvalue())
    buf.seek(0)
    decoded = list(VcxDecoder(buf, "cpu").gops())
    total = sum(PSNR_YUV_WEIGHTS)
    sse = psnr = 0.0
    for k, w in enumerate(PSNR_YUV_WEIGHTS):
        se = size = 0.0
        for ref, test in zip(gops, decoded, strict=True):
            err = (ref.planes()[k].astype(np.float64) - test.planes()[k]).ravel()
            se, size = se + float(err @ err), size + err.size
        sse += w / total * se * sum(g.y.size for g in gops) / size  # on the luma grid
        psnr += w / total * 10 * np.log10(255.0**2 * size / max(se, 1e-9))
    return sse, psnr, bits


def build_params_database(
    data: str | Path | list[Path],
    config: ParamsDataConfig = ParamsDataConfig(),
    progress: Callable[[str], None] = print,
) -> ParamsDatabase:
    """Code the first ``config.frames`` frames of every clip in ``data`` (a folder, or a list of
    clips) as one stream at each QP, both ways: one row per clip and QP, its features the mean
    over the GOPs. (Coding each GOP alone, as a first version did, made I-frames most of the
    rate, where s = 2 saves far more than in a real stream: its choices cost 6-8 % BD-rate.)"""
    rows = []
    clips = data if isinstance(data, list) else find_clips(data)
    for clip in clips:
        with open_video(clip) as reader:
            gops = [g for g in reader.gops(GOP_SIZE, config.frames) if g.n_frames == GOP_SIZE]
        if not gops:
            progress(f"skipped {clip.name}: shorter than one GOP")
            continue
        for qp in config.qps:
            features = torch.stack([gop_features(g, qp) for g in gops]).mean(dim=0)
            coded = [code_segment(gops, reader.info, qp, s) for s in SCALES]
            sse, psnr, bits = (np.array(v) for v in zip(*coded, strict=True))
            rows.append((features.numpy(), sse, psnr, bits, qp, clip.name))
        progress(f"{clip.name}: {len(gops)} GOPs, {len(rows)} rows so far")
    return ParamsDatabase(*(np.stack(v) for v in zip(*rows, strict=True)))


@dataclass(frozen=True)
class ParamsTrainConfig:
    steps: int = 5000
    lr: float = 1e-2
    seed: int = 0


def train_params(
    db: ParamsDatabase,
    config: ParamsTrainConfig = ParamsTrainConfig(),
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> ParamNet:
    """Full-batch Adam on the cross-entropy of the search's choice, each row weighted by what
    the other choice would cost it (J / min J - 1, normalised to mean 1), so that close calls
    count little; progress gets the loss. (The expected regret itself, softmax * regret, sat in
    the always-s=1 minimum: 70 % agreement on the training rows against 96 % with this loss.)"""
    torch.manual_seed(config.seed)
    net = ParamNet(len(SCALES)).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    x = torch.from_numpy(db.features).float().to(device)
    cost = torch.from_numpy(db.cost).to(device)
    best = cost.argmin(dim=1)
    weight = (cost.max(dim=1).values / cost.min(dim=1).values - 1).float()
    weight = weight / weight.mean().clamp_min(1e-12)
    for step in range(config.steps):
        loss = (F.cross_entropy(net(x), best, reduction="none") * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            progress(step + 1, loss.item())
    return net.eval()


def choice_report(db: ParamsDatabase, choice: np.ndarray) -> dict[str, float]:
    """How a choice of scale index per row compares with the best by search: the share of
    rows where it agrees, its mean RD cost over the best (%), and that excess in dB, mean and
    worst (10 log10 of the cost ratio: J is an error energy, so this is the PSNR the choice
    gives away at equal rate, to first order)."""
    rows = np.arange(len(db))
    best = db.cost.argmin(axis=1)
    ratio = db.cost[rows, choice] / db.cost[rows, best]
    return {
        "agree_pct": 100 * float((choice == best).mean()),
        "cost_pct": 100 * float(ratio.mean() - 1),
        "cost_db": float((10 * np.log10(ratio)).mean()),
        "worst_db": float((10 * np.log10(ratio)).max()),
    }
