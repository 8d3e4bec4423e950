"""`vcodec bench`: vcx against x264/x265 on the same frames, with real byte counts and timings."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vcodec import __version__
from vcodec.device import resolve_device
from vcodec.errors import InputError
from vcodec.eval.metrics import MetricAccumulator, RegionPsnr, msssim_settings
from vcodec.eval.report import (
    BenchPoint,
    bd_table,
    plot_rd,
    pool,
    rate_kbps_bpp,
    write_csv,
    write_json,
)
from vcodec.eval.sample import make_sample
from vcodec.eval.scoring import (
    TASK_BD_METRICS,
    TASKS,
    TaskScore,
    Truth,
    ground_truth,
    pooled,
    score,
)
from vcodec.eval.tables import render_tables
from vcodec.eval.tasks import PSEUDO_MIN_SCORE, expand_inputs, find_labels
from vcodec.files import check_output
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.io import open_video
from vcodec.models.detectors import load_detector
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.base_layer import BASE_CODECS, PRESETS, BaseDecoder, BaseEncoder
from vcodec.stages.roi import RoiMap, qp_regions, roi_finder
from vcodec.stages.scale import coded_size, crop_gop, pad_gop

DEFAULT_QPS = (22, 27, 32, 37, 42)  # spans about 0.01-0.2 bpp on typical 360p-720p content
# vcx variants: the EncodeConfig fields each sets
VCX_VARIANTS: dict[str, dict] = {
    "vcx": {},
    "vcx-nomask": {"masks": False},
    "vcx-nopost": {"post": False},
    "vcx-notemporal": {"temporal": False},
    "vcx-nowiener": {"wiener": False},
    "vcx-noparams": {"scale": "1"},
    "vcx-s2": {"scale": "2"},
    "vcx-exhaustive": {"mask_search": "exhaustive"},
    "vcx-roi": {"roi": "motion"},
    "vcx-roi-sharp": {"roi": "motion", "background_scale": 1},
    "vcx-roi-task": {"roi": "motion", "post_model": "post-task-v1"},
    "vcx-pure": {"mode": "pure"},
}
ANCHORS = ("x264", "x265")
# x264 with the same ROI maps and QP offsets as vcx-roi (ffmpeg's ROI side data, as `addroi`)
ROI_ANCHORS = ("x264-roi",)
# vcx with one stage off or changed: also anchors, so that the table shows what each buys
ABLATIONS = (
    "vcx-nomask", "vcx-nopost", "vcx-notemporal", "vcx-nowiener", "vcx-noparams", "vcx-s2",
    "vcx-exhaustive", "vcx-roi", "vcx-roi-sharp", "vcx-roi-task",
)  # fmt: skip
CODECS = (*VCX_VARIANTS, *ANCHORS, *ROI_ANCHORS)
DEFAULT_CODECS = ("vcx", "x264", "x265")
OUTPUT_FILES = ("bench.json", "bench.csv", "rd.png")


@dataclass(frozen=True)
class BenchConfig:
    codecs: tuple[str, ...] = DEFAULT_CODECS
    qps: tuple[int, ...] = DEFAULT_QPS
    frames: int = 50
    preset: str = "medium"
    device: str = "auto"
    # "detect": detection mAP of every point; "track": also MOTA and IDF1; "segment": mIoU
    # (an ultralytics -seg model); each needs a detector
    task: str | None = None
    detector: str | None = None  # onnx-nanodet:PATH or ultralytics:PATH|NAME
    base: str = "x265"  # the vcx codecs' base layer (the anchors stay what they are named)

    @classmethod
    def from_strings(
        cls,
        *,
        codecs: str,
        qps: str | None,
        frames: int,
        preset: str,
        device: str,
        task: str | None = None,
        detector: str | None = None,
        base: str = "x265",
    ) -> BenchConfig:
        names = tuple(c.strip() for c in codecs.split(",") if c.strip())
        unknown = [c for c in names if c not in CODECS]
        if unknown or not names:
            raise InputError(f"unknown codec {unknown}; choose from {', '.join(CODECS)}")
        try:
            points = tuple(int(q) for q in qps.split(",")) if qps else DEFAULT_QPS
        except ValueError:
            raise InputError(f"--qp must be comma-separated integers, got {qps!r}") from None
        if not all(0 <= q <= 51 for q in points):
            raise InputError("every --qp point must be between 0 and 51")
        if frames < 1:
            raise InputError("--frames must be at least 1")
        if preset not in PRESETS:
            raise InputError(f"--preset must be one of {', '.join(PRESETS)}")
        resolve_device(device)
        if task is not None and task not in TASKS:
            raise InputError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
        if task and not detector:
            raise InputError(f"--task {task} needs --detector onnx-nanodet:PATH|ultralytics:PATH")
        if task == "segment" and not detector.startswith("ultralytics:"):
            raise InputError("--task segment needs --detector ultralytics:PATH (a -seg model)")
        if base not in BASE_CODECS:
            raise InputError(f"--base must be one of {', '.join(BASE_CODECS)}, got {base!r}")
        return cls(names, points, frames, preset, device, task, detector, base)

    @property
    def roi(self) -> tuple[str, str | None]:
        """(source, model) of the ROI maps: vcx-roi's and x264-roi's, and where every codec's
        ROI-PSNR is measured. The task's detector when there is one (task-aware ROI), else the
        motion finder (no weights), on the source frames."""
        kind, _, model = (self.detector or "").partition(":")
        if self.task and kind == "onnx-nanodet":
            return "nanodet", model
        if self.task and kind == "ultralytics":
            return "yolo", model
        return "motion", None

    def work_units(self, n_clips: int) -> int:
        return n_clips * len(self.codecs) * len(self.qps)


@dataclass
class BenchResult:
    points: list[BenchPoint]
    bd_rows: list[dict]
    files: list[Path]
    tables: list = field(default_factory=list)


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


def run_bench(
    inputs: list[Path],
    config: BenchConfig,
    out_dir: Path,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Bench every clip (the built-in sample when ``inputs`` is empty); write JSON, CSV, plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [check_output(out_dir / name, force=force) for name in OUTPUT_FILES]
    detector = (
        load_detector(config.detector, str(resolve_device(config.device))) if config.task else None
    )
    clips = [load_clip(p, config.frames) for p in expand_inputs(inputs)]
    clips = clips or [sample_clip(config.frames)]
    finder = roi_finder(*config.roi, device=str(resolve_device(config.device)))
    clips = [with_rois(c, finder) for c in clips]
    if detector is not None:
        clips = [
            replace(c, truth=ground_truth(config.task, detector, c.gops, c.truth, c.name))
            for c in clips
        ]
    points, per_class, scores = [], [], {}
    for clip in clips:
        for codec in config.codecs:
            for qp in config.qps:
                point, task = bench_point(clip, codec, qp, config, detector)
                points.append(point)
                scores[clip.name, codec, qp] = task
                if task is not None and task.per_class is not None:
                    per_class.append(
                        {"clip": clip.name, "codec": codec, "q": qp, "ap50": task.per_class}
                    )
                if progress:
                    progress(f"{clip.name} {codec} q{qp}")
    if detector is not None and len(clips) > 1:
        points += pooled_points(config.task, clips, points, scores)
    anchors = (*ANCHORS, *(c for c in (*ROI_ANCHORS, *ABLATIONS) if c in config.codecs))
    metrics = ("psnr_y", "psnr_yuv", "msssim_y", "psnr_roi")
    metrics += TASK_BD_METRICS.get(config.task, ())
    rows = bd_table(points, anchors, metrics)
    entries = [clip_entry(c) for c in clips]
    write_json(targets[0], points, rows, settings(config, detector), entries, per_class)
    write_csv(targets[1], points)
    plot_rd(targets[2], points)
    return BenchResult(points, rows, targets, render_tables(points, rows))


def load_clip(path: Path, frames: int) -> Clip:
    """The first ``frames`` frames of a video, or of a labelled sequence (tasks.find_labels:
    a MOT sequence, a YOLO folder or a seed-003 video; its ground truth comes along)."""
    labels = find_labels(path)
    with open_video(labels.frames) as reader:
        gops = list(reader.gops(GOP_SIZE, frames))
    n = sum(g.n_frames for g in gops)
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


def bench_point(
    clip: Clip, codec: str, qp: int, config: BenchConfig, detector=None
) -> tuple[BenchPoint, TaskScore | None]:
    """One point, and with a detector (config.task) its task scores."""
    if codec in VCX_VARIANTS:
        decoded, n_bytes, enc_s, dec_s = _run_vcx(clip, qp, config, VCX_VARIANTS[codec])
    else:
        decoded, n_bytes, enc_s, dec_s = _run_anchor(clip, codec, qp, config.preset)
    task = score(config.task, detector, decoded, clip.truth) if detector is not None else None
    metrics = MetricAccumulator()
    regions = RegionPsnr()
    device = str(resolve_device(config.device))
    for index, (ref, test) in enumerate(zip(clip.gops, decoded, strict=True)):
        metrics.add(ref, test, device=device)
        if clip.rois:
            regions.add(ref.y, test.y, clip.rois[index].pixels(ref.height, ref.width))
    mean = metrics.mean()
    psnr_roi, psnr_bg = regions.values()
    kbps, bpp = rate_kbps_bpp(
        n_bytes, clip.frames, clip.info.fps, clip.info.width, clip.info.height
    )
    return (
        BenchPoint(
            clip=clip.name,
            codec=codec,
            q=qp,
            bytes=n_bytes,
            frames=clip.frames,
            kbps=kbps,
            bpp=bpp,
            psnr_y=mean["psnr_y"],
            psnr_yuv=mean["psnr_yuv"],
            msssim_y=mean["msssim_y"],
            enc_fps=clip.frames / enc_s,
            dec_fps=clip.frames / dec_s,
            psnr_roi=psnr_roi,
            psnr_bg=psnr_bg,
            **(task.fields if task else {}),
        ),
        task,
    )


def pooled_points(
    task: str, clips: list[Clip], points: list[BenchPoint], scores: dict[tuple, TaskScore]
) -> list[BenchPoint]:
    """Per codec and quality setting, the clips' points pooled into one (report.pool) with
    the task metrics of every clip's frames as one set (scoring.pooled)."""
    by_key: dict[tuple[str, int], list[BenchPoint]] = {}
    for p in points:
        by_key.setdefault((p.codec, p.q), []).append(p)
    truths = [clip.truth for clip in clips]
    out = []
    for (codec, qp), group in by_key.items():
        found = [scores[clip.name, codec, qp] for clip in clips]
        out.append(pool(group, **pooled(task, found, truths)))
    return out


def _run_vcx(
    clip: Clip, qp: int, config: BenchConfig, variant: dict
) -> tuple[list[Gop], int, float, float]:
    buffer = io.BytesIO()
    if "roi" in variant:
        source, model = config.roi
        variant = {**variant, "roi": source, "roi_model": model}
    enc_cfg = EncodeConfig(
        qp=qp, base=config.base, preset=config.preset, device=config.device, **variant
    )
    start = time.perf_counter()
    encode_gops(clip.gops, clip.info, buffer, enc_cfg)
    enc_s = time.perf_counter() - start
    buffer.seek(0)
    start = time.perf_counter()
    decoded = list(VcxDecoder(buffer, config.device).gops())
    return decoded, buffer.getbuffer().nbytes, enc_s, time.perf_counter() - start


def _run_anchor(
    clip: Clip, codec: str, qp: int, preset: str
) -> tuple[list[Gop], int, float, float]:
    """The bare codec at CRF = qp, full resolution (padded to even size, cropped back)."""
    h, w = coded_size(clip.info.height, clip.info.width, 1)
    roi = codec in ROI_ANCHORS
    base = codec.removesuffix("-roi")
    start = time.perf_counter()
    encoder = BaseEncoder(base, w, h, clip.info.fps, qp, preset, roi)
    packets = [
        p
        for gop, rois in zip(clip.gops, clip.rois, strict=True)
        for p in encoder.encode(pad_gop(gop, h, w), qp_regions(rois, 1, w, h) if roi else None)
    ]
    packets += encoder.flush()
    enc_s = time.perf_counter() - start
    start = time.perf_counter()
    decoder = BaseDecoder(base)
    frames = decoder.decode(b"".join(packets)) + decoder.flush()
    decoded = []
    for gop in clip.gops:
        part, frames = frames[: gop.n_frames], frames[gop.n_frames :]
        padded = Gop.from_frames(part, gop.start)
        decoded.append(crop_gop(padded, clip.info.height, clip.info.width))
    return decoded, sum(len(p) for p in packets), enc_s, time.perf_counter() - start


def clip_entry(clip: Clip) -> dict:
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


def settings(config: BenchConfig, detector=None) -> dict:
    return {
        "task": config.task,
        "detector": detector.name if detector else None,
        "vcodec": __version__,
        "codecs": list(config.codecs),
        "qps": list(config.qps),
        "frames_per_clip": config.frames,
        "preset": config.preset,
        "anchors": {
            name: {
                "encoder": BASE_CODECS[name].encoder,
                "version": encoder_version(name),
                "rate_control": "crf = qp",
                "gop": "encoder default",
            }
            for name in ("x264", "x265")
        },
        "vcx": {  # the encoder's defaults, which the vcx variants change one at a time
            k: v
            for k, v in asdict(EncodeConfig(base=config.base, preset=config.preset)).items()
            if k not in ("qp", "frames", "device")
        },
        "rate": "vcx: whole .vcx file; anchors: sum of elementary-stream packet bytes; neither"
        " holds the SEI in which x264/x265 name their version and options",
        "roi_psnr": f"PSNR-Y inside / outside the {config.roi[0]} ROI maps of the source",
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
    }


def encoder_version(codec: str) -> str:
    """The encoder's own version string, read from the SEI it writes into its first packet."""
    encoder = BaseEncoder(codec, 64, 64, Fraction(25), 32, "ultrafast", info=True)
    gop = Gop.from_frames(
        [(np.zeros((64, 64), np.uint8),) + (np.full((32, 32), 128, np.uint8),) * 2]
    )
    data = b"".join(encoder.encode(gop) + encoder.flush())
    match = re.search(rb"(x26[45][^\x00]{0,40}?)(?: - |\x00)", data)
    return match.group(1).decode("ascii", "replace").strip() if match else "unknown"
