"""Training examples: [16, S, S] crops of real clips with their predictions, hybrid and pure.

A hybrid example pairs a crop with the same crop of the upscaled base layer that vcodec's own
pipeline decodes at a QP (x265 medium, masks and post-processing off, the encoder's default
scale; the shipped mask models' cache was made under v0's rule, s = 2 from qp 42 on frames of
240 lines and up); a pure example pairs it with the last frame before the GOP (or mid-grey, as
for a stream's first GOP).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vcodec.errors import InputError
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.io import FRAME_SUFFIXES, open_video
from vcodec.stages.masks import held_prediction

CPU = torch.device("cpu")  # default device of the training loops
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".y4m", ".264", ".h264", ".265", ".hevc")


@dataclass(frozen=True)
class DataConfig:
    """What to cut from each clip."""

    frames: int = 160  # frames read from the start of each clip
    crop: int = 64  # crop side in samples (luma or chroma plane)
    crops_per_gop: int = 8  # hybrid crops per GOP and QP
    pure_crops_per_gop: int = 24  # pure crops per GOP
    qps: tuple[int, ...] = (22, 27, 32, 37, 42)  # hybrid crops: the base layer's QPs
    pure_qps: tuple[int, ...] = (12, 17, 22, 27, 32, 37, 42)  # pure crops: the samples' QPs
    pure_grey_share: float = 0.5  # pure crops predicted from grey (a stream's first GOP)
    seed: int = 0


class ArraySet:
    """A dataclass of arrays with one row per example, all fields the same length: saved to
    and loaded from .npz (the training caches), and subset by rows."""

    def __len__(self) -> int:
        return len(getattr(self, next(iter(self.__dataclass_fields__))))

    def take(self, idx: np.ndarray) -> ArraySet:
        return type(self)(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})

    def save(self, path: str | Path) -> None:
        np.savez(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | Path) -> ArraySet:
        with np.load(path) as f:
            return cls(**{k: f[k] for k in cls.__dataclass_fields__})


@dataclass
class Examples(ArraySet):
    """x, p: [N, 16, S, S] uint8; qp: [N] int; pure, chroma: [N] bool."""

    x: np.ndarray
    p: np.ndarray
    qp: np.ndarray
    pure: np.ndarray
    chroma: np.ndarray


def find_clips(data: str | Path) -> list[Path]:
    """The clips in a folder: video files and folders of frames, sorted by name."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"--data {root}: not a folder of clips")
    clips = [
        p
        for p in sorted(root.iterdir())
        if p.suffix.lower() in VIDEO_SUFFIXES
        or (p.is_dir() and any(f.suffix.lower() in FRAME_SUFFIXES for f in p.iterdir()))
    ]
    if not clips:
        raise InputError(f"--data {root}: no video files or frame folders in it")
    return clips


def build_examples(
    data: str | Path, config: DataConfig = DataConfig(), progress: Callable[[str], None] = print
) -> Examples:
    """Crops from every clip in ``data``, at every QP in ``config.qps`` and in pure mode."""
    rng = np.random.default_rng(config.seed)
    parts: list[tuple] = []
    for clip in find_clips(data):
        with open_video(clip) as reader:
            gops = list(reader.gops(GOP_SIZE, config.frames))
        gops = [g for g in gops if g.n_frames == GOP_SIZE and min(g.u.shape[1:]) >= config.crop]
        if not gops:
            progress(f"skipped {clip.name}: too small or too short")
            continue
        for qp in config.qps:
            for gop, pred in zip(gops, base_layer(gops, reader.info, qp), strict=True):
                parts += _crops(gop, pred, qp, False, config.crops_per_gop, config.crop, rng)
        previous = None
        for gop in gops:
            qp = int(rng.choice(config.pure_qps))
            grey = rng.random() < config.pure_grey_share
            size = (gop.height, gop.width)
            held = held_prediction(None if grey else previous, gop.n_frames, gop.start, size)
            parts += _crops(gop, held, qp, True, config.pure_crops_per_gop, config.crop, rng)
            previous = gop
        progress(f"{clip.name}: {len(gops)} GOPs, {len(parts)} crops so far")
    x, p, qp, pure, chroma = (np.stack(v) for v in zip(*parts, strict=True))
    return Examples(x, p, qp, pure, chroma)


def base_layer(
    gops: list[Gop],
    info: VideoInfo,
    qp: int,
    scale: str = "1",
    post: bool = False,
    base: str = "x265",
) -> Iterator[Gop]:
    """The upscaled base layer vcodec decodes for ``gops`` at ``qp`` and ``scale`` with masks
    off: the prediction hybrid mode codes samples over (``post``: after the post-processing
    network), or the post-processing network's input (``post`` False). ``base``: the base
    layer's codec."""
    from vcodec.pipeline.config import EncodeConfig
    from vcodec.pipeline.decoder import VcxDecoder
    from vcodec.pipeline.encoder import encode_gops

    buf = io.BytesIO()
    encode_gops(
        iter(gops),
        info,
        buf,
        EncodeConfig(qp=qp, base=base, scale=scale, masks=False, post=post, device="cpu"),
    )
    buf.seek(0)
    yield from VcxDecoder(buf, "cpu").gops()


def _crops(gop: Gop, pred: Gop, qp: int, pure: bool, n: int, s: int, rng) -> list[tuple]:
    out = []
    for _ in range(n):
        name = rng.choice(["y", "y", "y", "u", "v"])
        x, p = getattr(gop, name), getattr(pred, name)
        top = int(rng.integers(0, x.shape[1] - s + 1))
        left = int(rng.integers(0, x.shape[2] - s + 1))
        window = (slice(None), slice(top, top + s), slice(left, left + s))
        out.append((x[window], p[window], qp, pure, name != "y"))
    return out
