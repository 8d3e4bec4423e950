"""`vcodec train params`: the parameter module, on the best scale found by coding streams both ways.

The database: windows of each clip (its first frames, and more every window_stride frames), at
each --qp of a sweep, are coded as one stream each (masks off, post-processing on, as the
encoder ships) at every scale, which gives each scale an RD curve per window. A scale's point
is scored by how far it lies above or below the best of the other scales' curves at its own
rate (dB of PSNR-YUV, the curves linear in log rate): what a BD-rate on PSNR-YUV rewards. The
module learns to pick the scale whose point lies on top.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.errors import InputError
from vcodec.eval.report import monotone
from vcodec.frames import GOP_SIZE, PSNR_YUV_WEIGHTS, Gop, VideoInfo
from vcodec.io import open_video
from vcodec.models.params import ParamNet
from vcodec.stages.scale import PARAMS_MIN_QP, SCALES, gop_features
from vcodec.train.data import CPU, ArraySet, find_clips

# --qp points of the database: steps of 2-3 from the module's lowest QP, so that each scale's
# curve is known between any two of them
DATABASE_QPS = (PARAMS_MIN_QP, 25, 27, 30, 32, 35, 37, 40, 42, 45, 47, 50)


@dataclass(frozen=True)
class ParamsDataConfig:
    frames: int = 64  # frames of each stream (window) coded (full GOPs only)
    qps: tuple[int, ...] = DATABASE_QPS  # the module says s = 1 below the first
    # a clip gives a window of `frames` frames at 0, window_stride, 2 window_stride ... frames
    # (each a stream and rows of its own) for as long as it lasts; 0: the first window alone
    window_stride: int = 320


@dataclass
class ParamsDatabase(ArraySet):
    """features: [N, FEATURES]; psnr: [N, len(SCALES)] PSNR-YUV of each scale; bits: [N,
    len(SCALES)]; qp: [N]; clip: [N] window names. A row is one window at one --qp."""

    features: np.ndarray
    psnr: np.ndarray
    bits: np.ndarray
    qp: np.ndarray
    clip: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        """[N, len(SCALES)] dB by which each scale's point lies above the best other scale's
        curve of the same window at the point's rate (negative: below it)."""
        margin = np.zeros(self.psnr.shape)
        log_bits = np.log(self.bits)
        for clip in np.unique(self.clip):
            rows = self.clip == clip
            for k in range(len(SCALES)):
                others = [
                    curve_at(log_bits[rows, j], self.psnr[rows, j], log_bits[rows, k])
                    for j in range(len(SCALES))
                    if j != k
                ]
                margin[rows, k] = self.psnr[rows, k] - np.max(others, axis=0)
        return margin

    @property
    def loss_db(self) -> np.ndarray:
        """[N, len(SCALES)] PSNR-YUV each choice gives away at equal rate against the best curve
        (0 where its point is on top)."""
        return np.maximum(0.0, -self.margin)

    @property
    def best(self) -> np.ndarray:
        """[N] the search's choice (a scale index): the point that lies highest above the others'
        curves."""
        return self.margin.argmax(axis=1)


def curve_at(log_rate: np.ndarray, psnr: np.ndarray, at: np.ndarray) -> np.ndarray:
    """A curve's PSNR at the log rates ``at``: its points ``[P]`` made monotone as the bench's
    BD-rate makes them (`report.monotone`), piecewise linear in log rate, extended beyond its
    ends along its end segments."""
    x, y = monotone(log_rate, psnr)
    if len(x) == 1:
        return np.full(np.shape(at), y[0])
    inside = np.interp(at, x, y)
    low = y[0] + (at - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
    high = y[-1] + (at - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
    return np.where(at < x[0], low, np.where(at > x[-1], high, inside))


def code_segment(gops: list[Gop], info: VideoInfo, qp: int, scale: int) -> tuple[float, float]:
    """(PSNR-YUV, bits) of GOPs coded as one stream at ``qp`` and ``scale``."""
    from vcodec.pipeline.config import EncodeConfig
    from vcodec.pipeline.decoder import VcxDecoder
    from vcodec.pipeline.encoder import encode_gops

    buf = io.BytesIO()
    config = EncodeConfig(qp=qp, base="x265", scale=str(scale), masks=False, device="cpu")
    encode_gops(iter(gops), info, buf, config)
    bits = 8.0 * len(buf.getvalue())
    buf.seek(0)
    decoded = list(VcxDecoder(buf, "cpu").gops())
    total = sum(PSNR_YUV_WEIGHTS)
    psnr = 0.0
    for k, w in enumerate(PSNR_YUV_WEIGHTS):
        se = size = 0.0
        for ref, test in zip(gops, decoded, strict=True):
            err = (ref.planes()[k].astype(np.float64) - test.planes()[k]).ravel()
            se, size = se + float(err @ err), size + err.size
        psnr += w / total * 10 * np.log10(255.0**2 * size / max(se, 1e-9))
    return psnr, bits


def build_params_database(
    data: str | Path | list[Path],
    config: ParamsDataConfig = ParamsDataConfig(),
    progress: Callable[[str], None] = print,
) -> ParamsDatabase:
    """Code each window of every clip in ``data`` (a folder, or a list of clips) as one stream
    at each QP and scale: one row per window and QP, its features the mean over the window's
    GOPs, its clip name the clip's (NAME@START for a later window). (Coding each GOP alone, as
    a first version did, made I-frames most of the rate, where s = 2 saves far more than in a
    real stream: its choices cost 6-8 % BD-rate.)"""
    rows = []
    clips = data if isinstance(data, list) else find_clips(data)
    for clip in clips:
        windows = 0
        with open_video(clip) as reader:  # one window in memory at a time
            for start, gops in clip_windows(reader.gops(GOP_SIZE), config):
                name = clip.name if start == 0 else f"{clip.name}@{start}"
                for qp in config.qps:
                    features = torch.stack([gop_features(g, qp) for g in gops]).mean(dim=0)
                    coded = [code_segment(gops, reader.info, qp, s) for s in SCALES]
                    psnr, bits = (np.array(v) for v in zip(*coded, strict=True))
                    rows.append((features.numpy(), psnr, bits, qp, name))
                windows += 1
                progress(f"{name}: {len(gops)} GOPs, {len(rows)} rows so far")
        if not windows:
            progress(f"skipped {clip.name}: shorter than one GOP")
    return ParamsDatabase(*(np.stack(v) for v in zip(*rows, strict=True)))


def clip_windows(gops: Iterator[Gop], config: ParamsDataConfig) -> Iterator[tuple[int, list[Gop]]]:
    """(first frame, full GOPs) of each window of a clip's GOPs; the first window may be
    shorter than ``config.frames``, later ones are whole."""
    if 0 < config.window_stride < config.frames:
        raise InputError(
            f"--window-stride must be 0 or at least --frames ({config.frames}), "
            f"got {config.window_stride}"
        )
    window: list[Gop] = []
    start = 0
    for gop in gops:
        full = gop.n_frames == GOP_SIZE
        if full and gop.start >= start and len(window) * GOP_SIZE < config.frames:
            window.append(gop)
        if len(window) * GOP_SIZE >= config.frames:
            yield start, window
            window = []
            if not config.window_stride:
                return
            start += config.window_stride
    if window and start == 0:
        yield start, window


@dataclass(frozen=True)
class ParamsTrainConfig:
    steps: int = 5000
    lr: float = 1e-2
    # chosen by leaving one training clip out at a time (models/README.md): without it, the
    # module's choices on the left-out clip swung with the seed
    weight_decay: float = 1e-3
    seed: int = 0


def train_params(
    db: ParamsDatabase,
    config: ParamsTrainConfig = ParamsTrainConfig(),
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> ParamNet:
    """Full-batch Adam on the cross-entropy of the search's choice, each row weighted by the dB
    the worse choice would give away (normalised to mean 1), so that close calls count little;
    progress gets the loss. (The expected regret itself, softmax * regret, sat in the
    always-s=1 minimum on an earlier database.)"""
    torch.manual_seed(config.seed)
    net = ParamNet(len(SCALES)).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x = torch.from_numpy(db.features).float().to(device)
    best = torch.from_numpy(db.best).to(device)
    weight = torch.from_numpy(db.loss_db.max(axis=1)).float().to(device)
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
    rows where it agrees, and the PSNR-YUV it gives away at equal rate (ParamsDatabase.loss_db),
    mean and worst, in dB."""
    lost = db.loss_db[np.arange(len(db)), choice]
    return {
        "agree_pct": 100 * float((choice == db.best).mean()),
        "mean_db": float(lost.mean()),
        "worst_db": float(lost.max()),
    }
