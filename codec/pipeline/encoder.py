"""encode(): video in, .vcx out: a thin loop that runs the plan's stages around the base layer
GOP by GOP and writes their payloads (side info, chunks) into the container."""

from __future__ import annotations

import contextlib
import io
import itertools
import resource
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from vcodec import __version__
from vcodec.bitstream.container import (
    BaseData,
    Cut,
    GopChunk,
    Samples,
    Segment,
    StreamHeader,
    Wiener,
)
from vcodec.device import resolve_device
from vcodec.errors import InputError, WorkerError
from vcodec.files import atomic_output, check_output, special_file
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.io import VideoReader, open_video, read_audio
from vcodec.models.registry import REGISTRY
from vcodec.notes import ReadLog
from vcodec.pipeline.config import STILL_BASE, EncodeConfig
from vcodec.pipeline.jobs import (
    WindowJob,
    WindowResult,
    WindowRunner,
    frames_handled_here,
    inline_jobs,
    plan_sources,
    plan_windows,
    set_threads,
    zip_results,
)
from vcodec.pipeline.plan import Plan, encoder_plan
from vcodec.pipeline.segments import longest_segment, scene_segments, window_gops
from vcodec.pipeline.side_info import GopParams
from vcodec.pipeline.stream import ChunkList, SegmentMerger, segment_stream
from vcodec.pipeline.targets import meet_target
from vcodec.stages.base_layer import BaseDecoder, BaseEncoder
from vcodec.stages.masks import MaskCodec, held_prediction, mask_models
from vcodec.stages.scale import base_qp, coded_size
from vcodec.stages.stage import Cost, GopContext
from vcodec.stages.temporal import coded_frames

Progress = Callable[[int], None]  # called with the number of frames just done
VCX_SUFFIX = ".vcx"
SPOOL_BYTES = 64 << 20  # a spooled stream stays in memory up to this size
BEFORE_GOP_CHUNK = (Wiener,)  # payload chunks written before their GOP chunk (FORMAT.md)


@dataclass(frozen=True)
class EncodeStats:
    """One encode's result: frames, bytes and seconds, and where the time and bytes went
    (``costs``: per stage, the base layer and the encoder's own decoding of it)."""

    frames: int
    bytes: int
    seconds: float
    width: int
    height: int
    fps: float
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    audio_bytes: int = 0  # of ``bytes``, the audio track's (carried, not in the video's rate)

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / max(1, self.frames * self.width * self.height)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode(
    src: str | Path,
    dst: str | Path,
    config: EncodeConfig = EncodeConfig(),
    *,
    force: bool = False,
    progress: Progress | None = None,
    runner: WindowRunner | None = None,
    resume: bool = False,
    target_size: str | None = None,
    bitrate: str | None = None,
    target_psnr: float | None = None,
    target_msssim: float | None = None,
) -> EncodeStats:
    """Encode the video file (or frame directory) ``src`` into the .vcx file ``dst``, window
    by window (``runner``: where they are coded, default one after the other here). What
    reading the input changed or found (a converted pixel format, a variable frame rate made
    constant, a truncated input) goes into the header's notes and is warned (VcxWarning).

    Each coded window is kept beside the partial output until the encode ends; a run killed
    midway leaves them, and the same encode with ``resume`` takes them back (ResumeStore).
    ``target_size`` (``25MB``: the whole file), ``bitrate`` (``800k``: the video's bits a
    second), ``target_psnr`` (dB, PSNR-YUV per window) or ``target_msssim`` (luma MS-SSIM
    per window) choose each window's qp instead of --qp (targets.py), from probe encodes;
    they do not resume."""
    import warnings

    from vcodec.errors import VcxWarning
    from vcodec.pipeline.resume import ResumeStore
    from vcodec.pipeline.stream import with_notes

    config = config.validate()
    targeted = bool(target_size or bitrate or target_psnr or target_msssim)
    if targeted and resume:
        raise InputError("--resume does not go with --target-size, --bitrate or a quality target")
    if special_file(dst) is None:  # first the checks that protect files, then the name's
        check_output(dst, force=force, inputs=[src])
    check_vcx_name(dst)
    start = time.perf_counter()
    with (
        open_video(src) as reader,
        atomic_output(dst, force=force, inputs=[src]) as tmp,
        contextlib.ExitStack() as stack,
    ):
        seconds = None if config.frames is None else config.frames / reader.info.fps
        audio = read_audio(src, seconds)  # --frames: as long as the video
        keep = special_file(dst) is None and not targeted  # a target's qps are its own
        store = ResumeStore.open(dst, config, resume=resume, keep=keep)
        stack.callback(store.abandon)  # on any error, a store that kept nothing goes
        # spooled: the notes, known once the input is read, go into the header
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool, open(tmp, "wb") as out:
            costs: dict[str, dict] = {}
            logs: list[ReadLog] = []
            windows = plan_windows(reader, src, config)  # demuxed: no frame decoded
            gops: Iterable[Gop] = ()
            jobs: Iterator[WindowJob] | None = None
            if windows is not None:  # each window read where it is coded
                jobs = iter(windows)
                reader.close()  # its decoder's threads end before workers start (fork)
            elif runner is not None and runner is not run_here or targeted:
                jobs = plan_sources(reader, src, config)  # a first pass, where the index fails
            else:  # one pass: read and coded here
                gops = reader.gops(GOP_SIZE, config.frames)
            if targeted:
                asked = (target_size, bitrate, target_psnr, target_msssim, len(audio or b""))
                runner, targeted_jobs = meet_target(list(jobs), runner or run_here, *asked)
                jobs = iter(targeted_jobs)
            frames = encode_gops(
                gops, reader.info, spool, config, audio=audio, progress=progress, costs=costs,
                runner=runner, store=store, jobs=jobs, logs=logs,
            )  # fmt: skip
            notes = reader.notes() if windows is None else _notes(logs, reader, config)
            size = with_notes(spool, out, notes)
        store.finish()
    for note in notes:
        warnings.warn(note, VcxWarning, stacklevel=2)
    info = reader.info
    return EncodeStats(
        frames, size, time.perf_counter() - start, info.width, info.height, float(info.fps),
        costs, peak_rss_mb(), len(audio or b""),
    )  # fmt: skip


def check_vcx_name(dst: str | Path) -> None:
    """InputError unless ``dst`` is named ``*.vcx`` (or is a device or pipe): an encode never
    writes .vcx data under a name that says it is something else (``out.mp4``). A folder
    is left to the output's own checks (never replaced: OutputExistsError)."""
    path = Path(dst)
    if path.suffix.lower() != VCX_SUFFIX and special_file(path) is None and not path.is_dir():
        raise InputError(
            f"{dst}: the output of an encode is a .vcx file; name it {Path(dst).stem}.vcx "
            "(decode it to get an mp4)"
        )


def encode_gops(
    gops: Iterable[Gop],
    info: VideoInfo,
    out: BinaryIO,
    config: EncodeConfig = EncodeConfig(),
    *,
    audio: bytes | None = None,
    progress: Progress | None = None,
    costs: dict[str, dict[str, Any]] | None = None,
    runner: WindowRunner | None = None,
    store: Any = None,
    jobs: Iterator[WindowJob] | None = None,
    logs: list[ReadLog] | None = None,
) -> int:
    """Encode GOPs of ``info``'s size into an open binary stream; returns the frame count.

    The frames are cut into windows and these into segments (segments.py), each window coded
    by ``runner`` (default: here, one after the other; workers.py has processes and Ray) and
    joined in order, so the bytes are the same whoever codes them. ``costs``, when given,
    receives each stage's seconds and bytes (and the base layer's), summed over the segments.
    ``store``: a ResumeStore whose kept windows are taken instead of coding them again.
    ``jobs``: the windows already found (plan_windows, plan_sources: workers read their frames
    themselves); ``gops`` is then not read, and ``logs`` receives what their reading found."""
    config = config.validate()
    if jobs is None:
        run_elsewhere = runner is not None and runner is not run_here
        kept = store is not None and bool(store.entries)
        tagged = window_gops(gops, longest_segment(info.fps, config.segment_seconds))
        jobs = inline_jobs(tagged, info, config, materialise=run_elsewhere or kept)
    merger = SegmentMerger()
    totals = costs if costs is not None else {}
    run = runner or run_here
    for job, result in zip_results(jobs, run, store):
        merger.add(result.data)
        _add_costs(totals, result.costs)
        if logs is not None and result.log is not None:
            logs.append(result.log)
        if progress:
            progress(job.frames)
    return _join(merger, info, config, out, audio)


def _join(
    merger: SegmentMerger, info: VideoInfo, config: EncodeConfig, out: BinaryIO, audio: bytes | None
) -> int:
    """Write the joined segments as one stream; returns its frame count."""
    header = _header(info, replace(config, base=merger.base or STILL_BASE), [])
    merger.write(out, header, audio)
    return merger.frames


def _add_costs(totals: dict[str, dict[str, Any]], costs: dict[str, dict[str, Any]]) -> None:
    for name, cost in costs.items():
        total = totals.setdefault(name, {"seconds": 0.0, "bytes": 0})
        total["seconds"] += cost["seconds"]
        total["bytes"] += cost["bytes"]


def _notes(logs: list[ReadLog], reader: VideoReader, config: EncodeConfig) -> list[str]:
    """The notes of an input read window by window (each where it was coded)."""
    log = ReadLog.joined(logs)
    log.ended = config.frames is None or log.frames < config.frames
    return log.notes(reader.info)


def run_here(jobs: Iterator[WindowJob]) -> Iterator[WindowResult]:
    """The default runner: every window coded in this process, in order."""
    for job in jobs:
        yield encode_window(job)


def encode_window(job: WindowJob) -> WindowResult:
    """Code one window: its segments (cut at its scene changes, each coded alone: its base
    layer and stages chosen on its own frames) joined into a .vcx of its own. A window a
    worker reads itself after a seek must start at the frame its index says; where it does
    not (an open-GOP stream's leading pictures) it is read again from the input's start. One
    found by a first pass must give the frames that pass saw (its digest)."""
    frames_handled_here()
    result = _code_segments(job, job.read())
    source = job.source
    if source is not None and source.start_pts is not None:
        if job.first_pts != source.start_pts:
            result = _code_segments(job, job.read(seek=False))
    elif source is not None and job.digest and job.read_digest != job.digest:
        raise WorkerError(f"window {job.index}: the input changed while it was read")
    digest = job.digest or job.read_digest
    return replace(result, digest=digest, frames=job.frames, log=job.read_log)


def _code_segments(job: WindowJob, frames: Iterator[Gop]) -> WindowResult:
    merger, costs = SegmentMerger(), {}
    for _, group in itertools.groupby(scene_segments(frames), key=lambda g: g.segment):
        result = _encode_frames(job, (g.gop for g in group))
        merger.add(result.data)
        _add_costs(costs, result.costs)
    if merger.segments == 0:
        raise InputError("the input has no frames to encode")
    out = io.BytesIO()
    _join(merger, job.info, job.config.validate(), out, None)
    return WindowResult(out.getvalue(), costs)


def _encode_frames(job: WindowJob, frames: Iterator[Gop]) -> WindowResult:
    config = job.config.validate()
    set_threads(config.threads)
    first = next(frames, None)
    if first is None:
        raise InputError("the input has no frames to encode")
    gops = itertools.chain([first], frames)
    device = resolve_device(config.device)
    chunks = ChunkList()
    asked = job.target or f"qp {config.qp}"
    cut = Cut(0, 0, 0, config.base, config.qp, config.threads, target=asked)
    if config.mode == "pure":
        masks = MaskCodec(
            config.qp, True, device, config.mask_search, recon_model=config.recon_model
        )
        models = list(mask_models(config.recon_model))
        _encode_pure(gops, chunks, masks)
        data = segment_stream(_header(job.info, config, models), cut, chunks, set())
        return WindowResult(data, {})
    plan = encoder_plan(config, job.info, device)
    hybrid = _HybridEncoder(chunks, job.info, config, plan)
    hybrid.run(gops)
    # the models of a stage that no GOP ended up using are taken out (with its SAMPLES
    # chunks or side-info symbol), so asking for a stage never costs more than going without
    with hybrid.container.timed():
        header = _header(job.info, config, plan.models())
        data = segment_stream(header, cut, chunks, plan.unused_models())
    return WindowResult(data, hybrid.costs())


def _encode_pure(gops: Iterable[Gop], writer: ChunkList, masks: MaskCodec) -> None:
    """Pure mode: each GOP coded by masked samples over the previous GOP's last frame."""
    previous = None
    for gop in gops:
        index = writer.gops
        writer.write(GopChunk(index, writer.frames, gop.n_frames, GopParams(scale=1).pack()))
        held = held_prediction(previous, gop.n_frames, gop.start, (gop.height, gop.width))
        payload, previous = masks.encode_gop(gop, held)
        writer.write(Samples(index, payload))


class _HybridEncoder:
    """The base layer GOP by GOP, with the plan's stages before it and, once the encoder has
    decoded its own base layer, after it: each GOP's WIENER chunk, GOP chunk (its side-info
    symbols), ROI chunk and SAMPLES follow once that GOP's frames are decoded."""

    def __init__(
        self, writer: ChunkList, info: VideoInfo, config: EncodeConfig, plan: Plan
    ) -> None:
        self.writer, self.info, self.config, self.plan = writer, info, config, plan
        self.base: BaseEncoder | None = None
        self.local: BaseDecoder | None = None  # decodes our own base layer
        self.waiting: deque[tuple[Gop, GopContext]] = deque()  # (source, context), GOP order
        self.frames: list[tuple] = []  # decoded base-layer frames not yet given to a GOP
        self.gops_in = 0
        self.base_cost, self.decode_cost, self.container = Cost(), Cost(), Cost()

    def costs(self) -> dict[str, dict[str, Any]]:
        """Seconds and bytes of the base layer, of decoding it again, and of every stage."""
        parts = {
            "base": self.base_cost,
            "self-decode": self.decode_cost,
            "container": self.container,
        }
        return {k: v.as_dict() for k, v in parts.items()} | self.plan.costs()

    def run(self, gops: Iterable[Gop]) -> None:
        scale = 0
        for gop in gops:
            ctx = GopContext(self.gops_in, gop.n_frames, self.config.qp)
            self.gops_in += 1
            ctx.scale = self.plan.scale.choose(gop)
            ctx.base_qp = base_qp(self.config.qp, ctx.scale)
            if ctx.scale != scale:
                self._end_segment()
                scale = ctx.scale
                self._start_segment(scale)
            source = coded = gop
            for stage in self.plan.before_base():
                coded = stage.before_base(coded, ctx)
                if stage is self.plan.roi:  # seed 002: from here on, the source is the reduced one
                    source = coded
            regions = None
            if ctx.roi is not None and self.base.roi:  # (not on SVT-AV1: it takes no offsets)
                regions = self.plan.roi.qp_regions(ctx.roi, scale, coded.width, coded.height)
            self.waiting.append((source, ctx))
            with self.base_cost.timed():
                packets = self.base.encode(coded, regions)
            self._emit(packets)
            self._finish_decoded()
        self._end_segment()

    def _start_segment(self, scale: int) -> None:
        height, width = coded_size(self.info.height, self.info.width, scale)
        config = self.config
        with self.base_cost.timed():
            self.base = BaseEncoder(
                config.base, width // scale, height // scale, self.info.fps,
                base_qp(config.qp, scale), config.preset, config.roi != "none",
                tune=config.tune, threads=config.threads,
                keyint=longest_segment(self.info.fps, config.segment_seconds),
            )  # fmt: skip
        segment = Segment(config.base, width // scale, height // scale, self.base.extradata)
        self.writer.write(segment)
        self.local = BaseDecoder(config.base, self.base.extradata)

    def _end_segment(self) -> None:
        """Flush the base encoder; every GOP of the segment is written before the next one."""
        if self.base is None:
            return
        with self.base_cost.timed():
            packets = self.base.flush()
        self._emit(packets)
        with self.decode_cost.timed():
            self.frames += self.local.flush()
        self._finish_decoded()

    def _emit(self, packets: list[bytes]) -> None:
        if not packets:
            return
        data = b"".join(packets)
        self.writer.write(BaseData(data))
        self.base_cost.bytes += len(data)
        with self.decode_cost.timed():
            self.frames += self.local.decode(data)

    def _finish_decoded(self) -> None:
        """Run the stages after the base layer on every waiting GOP whose frames are decoded,
        and write its chunks: WIENER, GOP (the side-info symbols), then ROI and SAMPLES."""
        while self.waiting:
            source, ctx = self.waiting[0]
            count = len(coded_frames(ctx.n_frames, ctx.step))
            if len(self.frames) < count:
                return
            self.waiting.popleft()
            prediction = Gop.from_frames(self.frames[:count], source.start)
            del self.frames[:count]
            symbols, before, after = {}, [], []
            for stage in self.plan.after_base():
                prediction, payload = stage.encode_gop(source, prediction, ctx)
                if stage.side_info:
                    symbols.update(payload)
                elif payload is not None:
                    stage.cost.bytes += len(payload.data)
                    (before if isinstance(payload, BEFORE_GOP_CHUNK) else after).append(payload)
            for chunk in before:
                self.writer.write(chunk)
            side_info = GopParams(**symbols).pack()
            self.writer.write(GopChunk(ctx.index, self.writer.frames, ctx.n_frames, side_info))
            for chunk in after:
                self.writer.write(chunk)


def _header(info: VideoInfo, config: EncodeConfig, models: list[str]) -> StreamHeader:
    return StreamHeader(
        width=info.width,
        height=info.height,
        fps_num=info.fps.numerator,
        fps_den=info.fps.denominator,
        color_range=info.color_range,
        colorspace=info.colorspace,
        color_primaries=info.color_primaries,
        color_trc=info.color_trc,
        gop_size=GOP_SIZE,
        mode=config.mode,
        base_codec=config.base,
        qp=config.qp,
        models={name: REGISTRY[name].model_id for name in models},
        encoder=f"vcodec {__version__}",
        task=config.task,
    )
