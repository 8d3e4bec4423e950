"""Whole-stream plumbing shared by the encoder, decoder and info: opening a .vcx, starting and
finishing a writer, copying a stream with its notes or without the models no GOP used."""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from vcodec.bitstream.container import (
    FORMAT_VERSION,
    MAX_NOTE_BYTES,
    MAX_NOTES,
    Chunk,
    Cut,
    End,
    GopChunk,
    Roi,
    Samples,
    StreamHeader,
    VcxReader,
    VcxWriter,
    Wiener,
    encode_chunk,
    encode_header,
    read_header,
)
from vcodec.errors import InputError
from vcodec.files import is_stdio
from vcodec.pipeline.side_info import unpack_side_info
from vcodec.stages.masks import CANDIDATES_MODEL
from vcodec.stages.post import post_model

SPOOL_BYTES = 64 << 20  # a stream being joined stays in memory up to this size


def open_vcx(path: str | Path) -> BinaryIO:
    """Open a .vcx file for reading (``-``: standard input, read once, in order), turning a
    missing or unreadable file into InputError."""
    if is_stdio(path):
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a .vcx file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def start_stream(out: BinaryIO, header: StreamHeader, audio: bytes | None) -> VcxWriter:
    writer = VcxWriter(out, header)
    if audio:
        writer.write_audio(audio)
    return writer


def with_notes(stream: BinaryIO, out: BinaryIO, notes: Sequence[str]) -> int:
    """Copy a whole stream from its start, its header given ``notes`` (the first MAX_NOTES,
    each cut to MAX_NOTE_BYTES); the chunks are copied byte for byte. Returns the bytes
    written."""
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    if not notes:
        shutil.copyfileobj(stream, out)
        return size
    header, offset, _ = read_header(stream)
    cut = tuple(n.encode()[:MAX_NOTE_BYTES].decode(errors="ignore") for n in notes[:MAX_NOTES])
    written = out.write(encode_header(replace(header, notes=cut)))
    shutil.copyfileobj(stream, out)
    return written + size - offset


class ChunkList:
    """What a VcxWriter takes (``write``, ``frames``, ``gops``), kept as a list: one segment's
    chunks, before its header (which names the models it ended up using) is known."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.frames = 0
        self.gops = 0

    def write(self, chunk: Chunk) -> None:
        if isinstance(chunk, GopChunk):
            self.frames += chunk.n_frames
            self.gops += 1
        self.chunks.append(chunk)


def segment_stream(header: StreamHeader, cut: Cut, chunks: ChunkList, unused: set[str]) -> bytes:
    """One segment as a whole .vcx of its own: ``header`` (less the ``unused`` models), its
    CUT, its chunks (less the SAMPLES and post strengths of unused models), END."""
    models = header.models
    drop_post = post_model(models) is not None and post_model(models) in unused
    used = {k: v for k, v in models.items() if k not in unused}
    out = io.BytesIO()
    writer = VcxWriter(out, replace(header, models=used))
    writer.write(replace(cut, frames=chunks.frames, models=tuple(used)))
    for chunk in chunks.chunks:
        if isinstance(chunk, Samples) and CANDIDATES_MODEL in unused:
            continue
        if isinstance(chunk, GopChunk) and drop_post:
            params = unpack_side_info(chunk.side_info, models, FORMAT_VERSION)
            chunk = replace(chunk, side_info=replace(params, post=None).pack())
        writer.write(chunk)
    if writer.gops == 0:
        raise InputError("the input has no frames to encode")
    writer.close()
    return out.getvalue()


class SegmentMerger:
    """Segments (each a .vcx of its own, from segment_stream) joined in order into one stream:
    GOP indices and frame numbers shifted, the header's models their union."""

    def __init__(self) -> None:
        self.spool = tempfile.SpooledTemporaryFile(SPOOL_BYTES)
        self.models: dict[str, str] = {}
        self.frames = self.gops = self.segments = 0
        self.base: str | None = None  # the first segment's: the header's base codec

    def add(self, data: bytes) -> Cut:
        """Append one segment; returns its CUT as the joined stream has it."""
        reader = VcxReader(io.BytesIO(data))
        self.models |= reader.header.models
        cut = None
        shift_gop, shift_frame = self.gops, self.frames
        for chunk in reader:
            if isinstance(chunk, End):
                break
            chunk = _shifted(chunk, shift_gop, shift_frame)
            if isinstance(chunk, Cut):
                cut = chunk
                self.base = self.base or chunk.base
            elif isinstance(chunk, GopChunk):
                self.frames += chunk.n_frames
                self.gops += 1
            self.spool.write(encode_chunk(chunk))
        self.segments += 1
        return cut

    def write(self, out: BinaryIO, header: StreamHeader, audio: bytes | None) -> int:
        """The joined stream: ``header`` (with the segments' models and the first one's base
        codec), the audio, every segment, END; returns its bytes."""
        if self.gops == 0:
            raise InputError("the input has no frames to encode")
        header = replace(header, models=self.models, base_codec=self.base or header.base_codec)
        writer = start_stream(out, header, audio)
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, out)
        writer.bytes_written += self.spool.tell()
        writer.frames, writer.gops = self.frames, self.gops
        writer.close()
        self.spool.close()
        return writer.bytes_written


def _shifted(chunk: Chunk, gops: int, frames: int) -> Chunk:
    """``chunk`` of a segment coded alone, numbered as in the joined stream."""
    if isinstance(chunk, Cut):
        first = chunk.first_frame + frames
        return replace(chunk, first_gop=chunk.first_gop + gops, first_frame=first)
    if isinstance(chunk, GopChunk):
        return replace(chunk, index=chunk.index + gops, first_frame=chunk.first_frame + frames)
    if isinstance(chunk, (Samples, Wiener, Roi)):
        return replace(chunk, gop=chunk.gop + gops)
    return chunk
