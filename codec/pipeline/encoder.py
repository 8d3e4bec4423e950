"""encode(): video in, .vcx out: a thin loop that runs the plan's stages around the base layer
GOP by GOP and writes their payloads (side info, chunks) into the container."""

from __future__ import annotations

import itertools
import resource
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from vcodec import __version__
from vcodec.bitstream.container import (
    BaseData,
    GopChunk,
    Samples,
    Segment,
    StreamHeader,
    VcxWriter,
    Wiener,
)
from vcodec.device import resolve_device
from vcodec.errors import InputError
from vcodec.files import atomic_output, check_output, special_file
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.io import open_video, read_audio
from vcodec.models.registry import REGISTRY
from vcodec.pipeline.config import AUTO_BASE, STILL_BASE, EncodeConfig
from vcodec.pipeline.plan import Plan, choose_base, encoder_plan
from vcodec.pipeline.side_info import GopParams
from vcodec.pipeline.stream import finish_stream, start_stream, without_models
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
) -> EncodeStats:
    """Encode the video file (or frame directory) ``src`` into the .vcx file ``dst``. What
    reading the input changed or found (a converted pixel format, a variable frame rate made
    constant, a truncated input) goes into the header's notes and is warned (VcxWarning)."""
    import warnings

    from vcodec.errors import VcxWarning
    from vcodec.pipeline.stream import with_notes

    config = config.validate()
    if special_file(dst) is None:  # first the checks that protect files, then the name's
        check_output(dst, force=force, inputs=[src])
    check_vcx_name(dst)
    start = time.perf_counter()
    with open_video(src) as reader, atomic_output(dst, force=force, inputs=[src]) as tmp:
        seconds = None if config.frames is None else config.frames / reader.info.fps
        audio = read_audio(src, seconds)  # --frames: as long as the video
        # spooled: the notes, known once the input is read, go into the header
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool, open(tmp, "wb") as out:
            gops = reader.gops(GOP_SIZE, config.frames)
            costs: dict[str, dict] = {}
            frames = encode_gops(
                gops, reader.info, spool, config, audio=audio, progress=progress, costs=costs
            )
            notes = reader.notes()
            size = with_notes(spool, out, notes)
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
) -> int:
    """Encode GOPs of ``info``'s size into an open binary stream; returns the frame count.
    ``costs``, when given, receives each stage's seconds and bytes (and the base layer's)."""
    config = config.validate()
    if config.base == AUTO_BASE:  # on the first GOP; the base's stage switches then resolve
        gops = iter(gops)
        first = next(gops, None)
        if first is not None:
            gops = itertools.chain([first], gops)
        chosen = STILL_BASE if first is None else choose_base(first, config.qp)
        config = replace(config, base=chosen).validate()
    device = resolve_device(config.device)
    if config.mode == "pure":
        masks = MaskCodec(
            config.qp, True, device, config.mask_search, recon_model=config.recon_model
        )
        models = list(mask_models(config.recon_model))
        writer = start_stream(out, _header(info, config, models), audio)
        _encode_pure(gops, writer, masks, progress)
        return finish_stream(writer)
    plan = encoder_plan(config, info, device)
    # The stream is spooled: the models of a stage that no GOP ended up using are then taken
    # out (with its SAMPLES chunks or side-info symbol), so asking for a stage never costs
    # more than going without.
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool:
        writer = start_stream(spool, _header(info, config, plan.models()), audio)
        hybrid = _HybridEncoder(writer, info, config, plan, progress)
        hybrid.run(gops)
        frames = finish_stream(writer)
        spool.seek(0)
        unused = plan.unused_models()
        with hybrid.container.timed():
            if unused:
                without_models(spool, out, unused)
            else:
                shutil.copyfileobj(spool, out)
    if costs is not None:
        costs.update(hybrid.costs())
    return frames


def _encode_pure(
    gops: Iterable[Gop], writer: VcxWriter, masks: MaskCodec, progress: Progress | None
) -> None:
    """Pure mode: each GOP coded by masked samples over the previous GOP's last frame."""
    previous = None
    for gop in gops:
        index = writer.gops
        writer.write(GopChunk(index, writer.frames, gop.n_frames, GopParams(scale=1).pack()))
        held = held_prediction(previous, gop.n_frames, gop.start, (gop.height, gop.width))
        payload, previous = masks.encode_gop(gop, held)
        writer.write(Samples(index, payload))
        if progress:
            progress(gop.n_frames)


class _HybridEncoder:
    """The base layer GOP by GOP, with the plan's stages before it and, once the encoder has
    decoded its own base layer, after it: each GOP's WIENER chunk, GOP chunk (its side-info
    symbols), ROI chunk and SAMPLES follow once that GOP's frames are decoded."""

    def __init__(
        self,
        writer: VcxWriter,
        info: VideoInfo,
        config: EncodeConfig,
        plan: Plan,
        progress: Progress | None,
    ) -> None:
        self.writer, self.info, self.config, self.plan = writer, info, config, plan
        self.progress = progress
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
                tune=config.tune,
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
            if self.progress:
                self.progress(ctx.n_frames)


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
