"""The bench's clips: the first frames of each input (with its labels), or the sample clip."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from vcodec.errors import InputError
from vcodec.eval.sample import make_sample
from vcodec.eval.scoring import Truth
from vcodec.eval.tasks import PSEUDO_MIN_SCORE, find_labels
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.io import open_video
from vcodec.metrics import msssim_settings
from vcodec.stages.roi import RoiMap


@dataclass(frozen=True)
class Clip:
    name: str
    info: VideoInfo
    gops: list[Gop]
    # per GOP: where ROI-PSNR is measured and x264-roi puts its offsets (with_rois); none:
    # no ROI-PSNR
    rois: list[RoiMap] = field(default_factory=list)
    truth: Truth = Truth()  # the labels that came with it; with a task, what it scores on

    @property
    def frames(self) -> int:
        return sum(g.n_frames for g in self.gops)


def load_clip(path: Path, frames: int) -> Clip:
    """The first ``frames`` frames of a video, or of a labelled sequence (tasks.find_labels:
    a MOT sequence, a YOLO folder or a seed-003 video; its ground truth comes along)."""
    labels = find_labels(path)
    with open_video(labels.frames) as reader:
        gops = list(reader.gops(GOP_SIZE, frames))
    n = sum(g.n_frames for g in gops)
    if n == 0:
        raise InputError(f"{path}: no frames to bench")
    truth = Truth(
        labels.truth[:n] if labels.truth is not None else None,
        labels.masks[:n] if labels.masks is not None else None,
        labels.layout,
    )
    for kind, per_frame in (("labels", truth.boxes), ("masks", truth.masks)):
        if per_frame is not None and len(per_frame) < n:
            raise InputError(f"{path}: {kind} for {len(per_frame)} frames, the clip has {n}")
    return Clip(Path(path).stem, reader.info, gops, truth=truth)


def with_rois(clip: Clip, finder) -> Clip:
    """``clip`` with the ROI maps ``finder`` (vcodec.roi) makes from its source GOPs."""
    return replace(clip, rois=[finder.find(gop) for gop in clip.gops])


def sample_clip(frames: int) -> Clip:
    info, gops = make_sample(frames=frames)
    return Clip("sample", info, gops)


def clip_entry(clip: Clip) -> dict:
    """The clip as bench.json describes it."""
    return {
        "name": clip.name,
        "width": clip.info.width,
        "height": clip.info.height,
        "frames": clip.frames,
        "fps": str(Fraction(clip.info.fps)),
        "msssim_win_size_levels": msssim_settings(clip.info.height, clip.info.width),
        "roi_coverage": float(np.mean([roi.coverage for roi in clip.rois])) if clip.rois else None,
        "ground_truth": {
            "mot": "MOT gt.txt",
            "yolo": "YOLO labels",
            "seed003": "seed 003 labels / masks",
            "pseudo": f"pseudo: the model's output at score >= {PSEUDO_MIN_SCORE} on the source",
        }.get(clip.truth.layout),
    }


# named clip sets (`vcodec bench --set NAME`): the file-name patterns they take from a folder,
# and the codecs they run when --codecs is not given (the speed/size map's points)
CLIP_SETS = {
    "fixed-cameras": (
        ("fixedcam_*", "intel_car*", "bgslib_highway*", "bgslib_wsdot*"),
        "vcx,av1:4,av1:6,av1,av1:10,x265,x265:slow",
    ),
}
DEFAULT_CLIPS_DIR = Path("../shared/data/clips")  # where the project's shared clips live


def clip_set(name: str, folder: Path) -> list[Path]:
    """The clips of set ``name`` in ``folder``, in name order; InputError if none."""
    if name not in CLIP_SETS:
        raise InputError(f"--set must be one of {', '.join(CLIP_SETS)}, got {name!r}")
    if not folder.is_dir():
        raise InputError(f"--clips {folder} is not a folder (--set {name} takes its clips there)")
    patterns, _ = CLIP_SETS[name]
    clips = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    if not clips:
        raise InputError(f"{folder} holds no clip of --set {name} ({', '.join(patterns)})")
    return clips
