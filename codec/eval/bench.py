"""`vcodec bench`: vcx against x264/x265/SVT-AV1 on the same frames, with real bytes and timings."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import av

from vcodec import __version__
from vcodec.device import resolve_device
from vcodec.errors import InputError
from vcodec.eval.anchors import (
    MAP_REFERENCE,
    ROI_ANCHORS,
    TUNED_ANCHORS,
    VCX_VARIANTS,
    CodecName,
    anchor_settings,
    parse_codec,
    run_anchor,
)
from vcodec.eval.clips import Clip, clip_entry, load_clip, sample_clip, with_rois
from vcodec.eval.frame_crops import FrameCrop, centre_crop, middle_frame
from vcodec.eval.html_report import ClipFrames, write_html_report
from vcodec.eval.outputs import OUTPUT_FILES, bench_outputs, check_out_dir
from vcodec.eval.pareto import MAP_METRIC, MIN_SHARED_DB, map_rows, plot_pareto
from vcodec.eval.report import (
    BenchPoint,
    bd_table,
    plot_rd,
    pool,
    rate_kbps_bpp,
    unique,
    write_csv,
    write_json,
)
from vcodec.eval.scoring import TASK_BD_METRICS, TASKS, TaskScore, ground_truth, pooled, score
from vcodec.eval.tables import render_tables
from vcodec.eval.tasks import expand_inputs
from vcodec.frames import Gop
from vcodec.metrics import MetricAccumulator, RegionPsnr
from vcodec.models.detectors import load_detector
from vcodec.pipeline.config import AUTO_BASE, BASES, EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.pipeline.jobs import regroup
from vcodec.stages.base_layer import PRESETS, svt_preset
from vcodec.stages.roi import detector_roi, roi_finder

__all__ = ["BenchConfig", "BenchResult", "Clip", "bench_point", "load_clip", "run_bench"]

DEFAULT_QPS = (22, 27, 32, 37, 42)  # spans about 0.01-0.2 bpp on typical 360p-720p content
ANCHORS = ("x264", "x265")  # every codec's BD-rates are against these (and av1 when it runs)
# vcx with one stage off or changed: also anchors, so that the table shows what each buys
ABLATIONS = (
    "vcx-nomask", "vcx-nopost", "vcx-notemporal", "vcx-noflow", "vcx-flow", "vcx-nowiener",
    "vcx-notune", "vcx-noparams", "vcx-s2", "vcx-exhaustive", "vcx-roi", "vcx-roi-sharp",
    "vcx-roi-task", "vcx-pure-recon1",
)  # fmt: skip
# av1: SVT-AV1, the codec vcx must beat (DESIGN §5); x265-psnr: vcx's base layer alone
DEFAULT_CODECS = ("vcx", "x264", "x265", "x265-psnr", "av1")


@dataclass(frozen=True)
class BenchConfig:
    # each a --codecs name as parse_codec writes it: vcx, vcx:slow, x265, x265:slow, av1:6
    codecs: tuple[str, ...] = DEFAULT_CODECS
    qps: tuple[int, ...] = DEFAULT_QPS
    frames: int = 50
    preset: str = "medium"  # the anchors' preset unless named (x265:slow) and vcx's base's
    device: str = "auto"
    # "detect": detection mAP of every point; "track": also MOTA and IDF1; "segment": mIoU
    # (an ultralytics -seg model); each needs a detector
    task: str | None = None
    detector: str | None = None  # onnx-nanodet:PATH or ultralytics:PATH|NAME
    base: str = AUTO_BASE  # the vcx codecs' base layer (the anchors stay what they are named)
    # the detector of the ROI maps (vcx-task, vcx-roi, x264-roi) when it is not the judge's
    map_detector: str | None = None

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
        base: str = AUTO_BASE,
        map_detector: str | None = None,
    ) -> BenchConfig:
        """The config, or InputError naming the first bad option. With --base av1 and a vcx
        codec, ``av1`` (SVT-AV1 at vcx's base preset) runs too: vcx's gain is against it."""
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
        names = [parse_codec(c, preset) for c in codecs.split(",") if c.strip()]
        if not names:
            raise InputError("--codecs names no codec")
        if base not in BASES:
            raise InputError(f"--base must be one of {', '.join(BASES)}, got {base!r}")
        if base in (AUTO_BASE, "av1") and any(n.vcx for n in names):
            names.append(CodecName("av1"))
        resolve_device(device)
        if task is not None and task not in TASKS:
            raise InputError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
        if task and not detector:
            raise InputError(f"--task {task} needs --detector onnx-nanodet:PATH|ultralytics:PATH")
        if task == "segment" and not detector.startswith("ultralytics:"):
            raise InputError("--task segment needs --detector ultralytics:PATH (a -seg model)")
        config = cls(tuple(unique(n.name for n in names)), points, frames, preset, device)
        if map_detector and not task:
            raise InputError("--map-detector goes with --task (the judge is --detector)")
        detector_roi(map_detector)  # a malformed one is refused now, not after the anchors
        config = replace(config, task=task, detector=detector, base=base, map_detector=map_detector)
        for name in names:  # a vcx codec the encoder would refuse (vcx-roi on --mode pure)
            if name.vcx:
                vcx_config(config, name, points[0]).validate()
        return config

    @property
    def roi(self) -> tuple[str, str | None]:
        """(source, model) of the ROI maps: vcx-roi's and x264-roi's, and where every codec's
        ROI-PSNR is measured. With --task, --map-detector's or else the judge's (task-aware
        ROI), else the motion finder (no weights), on the source frames."""
        return detector_roi(self.map_detector or self.detector if self.task else None)

    @property
    def anchors(self) -> tuple[str, ...]:
        """The codecs every other gets a BD-rate against: x264, x265, av1 (at the bench's
        preset), and the tuned and ROI anchors and ablations that run."""
        extra = [c for c in ("av1", *TUNED_ANCHORS, *ROI_ANCHORS, *ABLATIONS) if c in self.codecs]
        return (*ANCHORS, *extra)

    def name(self, codec: str) -> CodecName:
        return parse_codec(codec, self.preset)

    def setting(self, codec: str) -> str:
        """A codec's preset (SVT-AV1: its number) or a vcx codec's --speed."""
        name = self.name(codec)
        return name.speed() if name.vcx else name.preset(self.preset)

    def work_units(self, n_clips: int) -> int:
        return n_clips * len(self.codecs) * len(self.qps)


@dataclass
class BenchResult:
    points: list[BenchPoint]
    bd_rows: list[dict]
    files: list[Path]
    tables: list = field(default_factory=list)
    map: list[dict] = field(default_factory=list)  # pareto.map_rows


def run_bench(
    inputs: list[Path],
    config: BenchConfig,
    out_dir: Path,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    cluster: str | None = None,
) -> BenchResult:
    """Bench every clip (the built-in sample when ``inputs`` is empty); write JSON, CSV and
    the plots. Nothing is written until every point is measured (outputs.bench_outputs).
    ``cluster``: each point (clip x codec x qp) a Ray task on the cluster at that address
    (workers.ray_runner's), the clips' frames shipped once through its object store."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force=force)
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
    points, per_class, scores, costs = [], [], {}, {}
    crops: dict[tuple[str, str, int], FrameCrop] = {}  # report.html's: a frame of each point
    grid = [(clip, codec, qp) for clip in clips for codec in config.codecs for qp in config.qps]
    if cluster is None:
        measured = (measure_point(*cell, config, detector) for cell in grid)
    else:
        measured = points_on_cluster(grid, config, cluster)
    for (clip, codec, qp), (point, task, cost, crop) in zip(grid, measured, strict=True):
        points.append(point)
        if cost:
            costs[clip.name, point.codec, qp] = cost
        crops[clip.name, point.codec, qp] = crop
        scores[clip.name, codec, qp] = task
        if task is not None and task.per_class is not None:
            per_class.append({"clip": clip.name, "codec": codec, "q": qp, "ap50": task.per_class})
        if progress:
            progress(f"{clip.name} {codec} q{qp}")
    if detector is not None and len(clips) > 1:
        points += pooled_points(config.task, clips, points, scores)
    metrics = ("psnr_y", "psnr_yuv", "msssim_y", "psnr_roi")
    metrics += TASK_BD_METRICS.get(config.task, ())
    rows = bd_table(points, config.anchors, metrics)
    setting = {c: config.setting(c) for c in config.codecs}
    speed_map = map_rows(points, rows, setting=setting)
    entries = [clip_entry(c) for c in clips]
    with bench_outputs(out_dir) as temp:
        doc = settings(config, detector)
        write_json(temp("bench.json"), points, rows, doc, entries, per_class, speed_map, costs)
        write_csv(temp("bench.csv"), points)
        rd, pareto = temp("rd.png"), temp("pareto.png")
        plot_rd(rd, points)
        plot_pareto(pareto, speed_map, reference_label(config))
        tables = render_tables(points, rows, speed_map, reference_label(config))
        plots = [("Rate-distortion curves", rd), ("Speed/size map", pareto)]
        sources = [
            ClipFrames(c.name, c.info, centre_crop(c.gops, middle_frame(c.gops))) for c in clips
        ]
        write_html_report(
            temp("report.html"),
            settings=doc,
            plots=plots,
            tables=tables,
            clips=sources,
            points=points,
            bd_rows=rows,
            crops=crops,
        )
    files = [out_dir / n for n in OUTPUT_FILES]
    return BenchResult(points, rows, files, tables, speed_map)


Measured = tuple[BenchPoint, TaskScore | None, dict, FrameCrop]  # measure_point's


def measure_point(clip: Clip, codec: str, qp: int, config: BenchConfig, detector=None) -> Measured:
    """One point with its task scores, costs and report crop (bench_point's)."""
    cost: dict = {}
    crops: dict = {}
    point, task = bench_point(clip, codec, qp, config, detector, cost, crops)
    return point, task, cost, crops[clip.name, point.codec, qp]


def points_on_cluster(
    grid: list[tuple[Clip, str, int]], config: BenchConfig, address: str
) -> Iterator[Measured]:
    """Each cell of ``grid`` measured as a Ray task (one CPU each; the detector, if any,
    loaded once in each worker process), in order. A point's speeds are its worker's, beside
    the others running then: the speed/size map wants a quiet machine, one point at a time."""
    from vcodec.pipeline.workers import RAY_RETRIES, connect_ray, ray_result

    ray, started = connect_ray(address)
    try:
        task = ray.remote(max_retries=RAY_RETRIES)(_point_on_worker)
        shipped: dict[str, Any] = {}
        refs = []
        for clip, codec, qp in grid:
            if clip.name not in shipped:
                shipped[clip.name] = ray.put(clip)
            refs.append(task.remote(shipped[clip.name], codec, qp, config))
        for ref in refs:
            yield ray_result(ray, ref)
    finally:
        if started:
            ray.shutdown()


@functools.lru_cache(maxsize=2)
def _worker_detector(spec: str, device: str) -> Any:
    return load_detector(spec, device)


def _point_on_worker(clip: Clip, codec: str, qp: int, config: BenchConfig) -> Measured:
    device = str(resolve_device(config.device))
    detector = _worker_detector(config.detector, device) if config.task else None
    return measure_point(clip, codec, qp, config, detector)


def reference_label(config: BenchConfig) -> str:
    return f"{MAP_REFERENCE} {config.preset}"


def bench_point(
    clip: Clip, codec: str, qp: int, config: BenchConfig, detector=None, costs=None, crops=None
) -> tuple[BenchPoint, TaskScore | None]:
    """One point, and with a detector (config.task) its task scores. ``costs``, a dict, gets
    a vcx point's encode and decode seconds and each stage's seconds and bytes; ``crops``, a
    dict, the centre crop of its middle frame (report.html's) by (clip, codec, q)."""
    name = config.name(codec)
    if name.vcx:
        decoded, n_bytes, enc_s, dec_s = _run_vcx(clip, qp, config, name, costs)
    else:
        decoded, n_bytes, enc_s, dec_s = run_anchor(clip, name, qp, config.preset)
    task = score(config.task, detector, decoded, clip.truth) if detector is not None else None
    if crops is not None:
        crops[clip.name, name.name, qp] = centre_crop(decoded, middle_frame(decoded))
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
            codec=name.name,
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


def vcx_config(config: BenchConfig, name: CodecName, qp: int) -> EncodeConfig:
    """The encoder settings of a vcx codec: its variant's fields at its --speed, on the
    bench's base layer and preset."""
    variant = VCX_VARIANTS[name.family]
    if "roi" in variant:
        source, model = config.roi
        variant = {**variant, "roi": source, "roi_model": model}
    if "task" in variant:
        detector = (config.map_detector or config.detector) if config.task else None
        variant = {**variant, "task": config.task or variant["task"], "detector": detector}
    fields = {"base": config.base} | variant  # a variant that names its base keeps it
    return EncodeConfig(
        qp=qp, preset=config.preset, device=config.device, speed=name.speed(), **fields
    )


def _run_vcx(
    clip: Clip, qp: int, config: BenchConfig, name: CodecName, costs: dict | None = None
) -> tuple[list[Gop], int, float, float]:
    buffer = io.BytesIO()
    stages: dict = {}
    start = time.perf_counter()
    encode_gops(clip.gops, clip.info, buffer, vcx_config(config, name, qp), costs=stages)
    enc_s = time.perf_counter() - start
    buffer.seek(0)
    start = time.perf_counter()
    # in the source's GOPs of 16 (a segment cut at a scene change ends with a shorter GOP)
    decoded = list(regroup(VcxDecoder(buffer, config.device).gops()))
    dec_s = time.perf_counter() - start
    if costs is not None:
        costs.update(encode_seconds=enc_s, decode_seconds=dec_s, stages=stages)
    return decoded, buffer.getbuffer().nbytes, enc_s, dec_s


def settings(config: BenchConfig, detector=None) -> dict:
    classical = [config.name(c) for c in config.codecs if not config.name(c).vcx]
    base_preset = config.preset
    if config.base in (AUTO_BASE, "av1"):
        av1 = f"SVT-AV1 preset {svt_preset(config.preset)}"
        base_preset = f"{config.preset} ({av1})"
    defaults = EncodeConfig(base=config.base, preset=config.preset).resolved()
    return {
        "task": config.task,
        "detector": detector.name if detector else None,
        "map_detector": config.map_detector or config.detector,
        "vcodec": __version__,
        "codecs": list(config.codecs),
        "qps": list(config.qps),
        "frames_per_clip": config.frames,
        "preset": config.preset,
        "anchors": {n.name: anchor_settings(n, config.preset) for n in classical},
        "vcx": {  # the encoder's defaults, which the vcx variants change one at a time
            k: v for k, v in asdict(defaults).items() if k not in ("qp", "frames", "device")
        },
        "vcx_base_preset": base_preset,
        "vcx_speeds": {c: config.name(c).speed() for c in config.codecs if config.name(c).vcx},
        "rate": "vcx: whole .vcx file; x264/x265: sum of elementary-stream packet bytes, "
        "without the SEI in which they name their version and options; av1: sum of its packet "
        "bytes, the sequence header included",
        "map": {
            "reference": reference_label(config),
            "metric": f"BD-rate on {MAP_METRIC}",
            "encode_fps": "frames over encode seconds, all points of a codec (ALL: every clip)",
            "dominated_by": "classical codecs of the clip at least as fast and as small as a "
            "vcx codec, better in one",
            "thin": f"classical codecs at least as fast whose curve shares under {MIN_SHARED_DB:g}"
            f" dB of {MAP_METRIC} with the vcx codec's: the size verdict rests on the curves' ends",
        },
        "roi_psnr": f"PSNR-Y inside / outside the {config.roi[0]} ROI maps of the source",
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
    }
