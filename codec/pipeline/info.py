"""A .vcx stream summarised for `vcodec info`: header fields, chunk counts and sizes, rates."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from vcodec.bitstream.container import (
    AudioPiece,
    BaseData,
    Cut,
    End,
    GopChunk,
    Roi,
    Samples,
    Segment,
    StreamHeader,
    StreamLimits,
    VcxReader,
    Wiener,
)
from vcodec.errors import UnknownModelError
from vcodec.models.registry import REGISTRY, require
from vcodec.pipeline.side_info import GopParams, unpack_side_info
from vcodec.pipeline.stream import open_vcx
from vcodec.stages.roi import RoiMap, read_roi
from vcodec.stages.scale import check_base_size
from vcodec.stages.wiener_payload import WienerDecoder


def describe(path: str | Path, limits: StreamLimits | None = None) -> dict[str, Any]:
    """Read every chunk of a .vcx (checking each CRC) and summarise the stream.

    A stream over ``limits`` is LimitError, one that names a model this vcodec does not know
    UnknownModelError (its side info cannot be read without it); one whose models this vcodec
    has with other weights is described, with them in ``missing_models``."""
    with open_vcx(path) as stream:
        reader = VcxReader(stream, limits)
        missing = missing_models(reader.header)
        header_bytes = reader.offset
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        scales: Counter[int] = Counter()
        strengths: Counter[float] = Counter()
        steps: Counter[int] = Counter()
        rois: list[RoiMap] = []
        wiener = WienerDecoder(reader.version)
        filtered: Counter[str] = Counter()  # GOPs with a filter on each plane
        end = End(0, 0)
        segment: Segment | None = None
        segments: list[dict[str, Any]] = []  # the CUT chunks' segments (format 9 on)
        header = reader.header  # as the current segment sees it
        first_roi = 0  # a segment's ROI maps are coded from its own first one
        offset = reader.offset
        for chunk in reader:
            kind = type(chunk).__name__
            counts[kind] += 1
            sizes[kind] += reader.offset - offset
            if segments and not isinstance(chunk, (Cut, End)):
                segments[-1]["bytes"] += reader.offset - offset
            offset = reader.offset
            if isinstance(chunk, Cut):
                header = replace(reader.header, base_codec=chunk.base, qp=chunk.qp, models={
                    m: reader.header.models[m] for m in chunk.models
                })  # fmt: skip
                segments.append(_segment_entry(chunk, reader.offset - offset))
                first_roi, segment = len(rois), None
            elif isinstance(chunk, Segment):
                segment = chunk
            elif isinstance(chunk, GopChunk):
                params = _side_info(chunk, reader, header)
                if segment is not None:  # the decoder's check: pure mode has no base layer
                    check_base_size(segment, reader.header, params.scale, chunk.index)
                scales[params.scale] += 1
                if params.post is not None:
                    strengths[params.strength] += 1
                if params.step is not None:
                    steps[params.temporal_step] += 1
            elif isinstance(chunk, Wiener):
                on = [f is not None for f in wiener.read(chunk.data)]
                filtered.update(p for p, f in zip("yuv", on, strict=True) if f)
            elif isinstance(chunk, Roi):
                h = reader.header
                before = rois[-1] if len(rois) > first_roi else None
                rois.append(read_roi(chunk, h.height, h.width, before))
            elif isinstance(chunk, End):
                end = chunk
    h = reader.header
    total = reader.offset  # every byte, read once (a pipe cannot be asked its size)
    seconds = end.frame_count * h.fps_den / h.fps_num
    names = {
        Cut: "cut",
        Segment: "segment",
        GopChunk: "gop",
        BaseData: "base",
        Samples: "samples",
        Wiener: "wiener",
        Roi: "roi",
        AudioPiece: "audio",
    }
    return {
        "file": str(path),
        "bytes": total,
        "header": {**asdict(h), "bytes": header_bytes, "format_version": reader.version},
        "missing_models": missing,
        "frames": end.frame_count,
        "gops": end.gop_count,
        "duration_s": round(seconds, 3),
        "kbps": round(8 * total / seconds / 1000, 3) if seconds else 0.0,
        "bpp": round(8 * total / max(1, end.frame_count * h.width * h.height), 5),
        "gop_scales": {str(s): n for s, n in sorted(scales.items())},
        "gop_post_strengths": {str(a): n for a, n in sorted(strengths.items())},
        "gop_temporal_steps": {str(t): n for t, n in sorted(steps.items())},
        "gop_wiener_planes": {p: filtered[p] for p in "yuv"},
        "roi": {
            "source": rois[0].source,
            "gops": len(rois),
            "mean_coverage": round(sum(r.coverage for r in rois) / len(rois), 4),
        }
        if rois
        else None,
        "segments": segments,
        "chunks": {
            names.get(t, "end"): {"count": counts[t.__name__], "bytes": sizes[t.__name__]}
            for t in (Cut, Segment, GopChunk, BaseData, Samples, Wiener, Roi, AudioPiece, End)
            if counts[t.__name__]
        },
    }


def missing_models(header: StreamHeader) -> list[str]:
    """Why this vcodec cannot decode the stream's models, one line each (its weights differ);
    UnknownModelError at once for a model it does not know at all."""
    missing = []
    for name, model_id in header.models.items():
        try:
            require(name, model_id)
        except UnknownModelError as exc:
            if name not in REGISTRY:  # what it adds to the side info cannot be read
                raise
            missing.append(str(exc))
    return missing


def _side_info(chunk: GopChunk, reader: VcxReader, header: StreamHeader) -> GopParams:
    if header.mode == "pure":
        return GopParams.unpack(chunk.side_info)
    return unpack_side_info(chunk.side_info, header.models, reader.version)


def _segment_entry(cut: Cut, size: int) -> dict[str, Any]:
    """A segment as `info` lists it: where it starts, its frames, base, qp, bytes, models."""
    return {
        "first_frame": cut.first_frame,
        "frames": cut.frames,
        "base": cut.base,
        "qp": cut.qp,
        "threads": cut.threads,
        "target": cut.target,
        "models": list(cut.models),
        "bytes": size,
    }
