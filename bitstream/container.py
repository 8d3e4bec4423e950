"""The .vcx container: versioned header + metadata, then typed, CRC32-checked chunks (FORMAT.md)."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import BinaryIO

from vcodec.bitstream.fields import ByteReader, ByteWriter

# the header's names, re-exported: the container is where readers and writers find them
from vcodec.bitstream.header import BASE_CODECS as BASE_CODECS
from vcodec.bitstream.header import CUT_VERSION as CUT_VERSION
from vcodec.bitstream.header import DEFAULT_MAX_GOP_FRAMES as DEFAULT_MAX_GOP_FRAMES
from vcodec.bitstream.header import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from vcodec.bitstream.header import FORMAT_VERSION as FORMAT_VERSION
from vcodec.bitstream.header import MAGIC as MAGIC
from vcodec.bitstream.header import MAX_NOTE_BYTES as MAX_NOTE_BYTES
from vcodec.bitstream.header import MAX_NOTES as MAX_NOTES
from vcodec.bitstream.header import MODEL_ID_BYTES as MODEL_ID_BYTES
from vcodec.bitstream.header import MODES as MODES
from vcodec.bitstream.header import PIX_FMTS as PIX_FMTS
from vcodec.bitstream.header import READABLE_VERSIONS as READABLE_VERSIONS
from vcodec.bitstream.header import TASKS as TASKS
from vcodec.bitstream.header import StreamHeader as StreamHeader
from vcodec.bitstream.header import StreamLimits as StreamLimits
from vcodec.bitstream.header import encode_header as encode_header
from vcodec.bitstream.header import read_exact, read_header, read_varint
from vcodec.errors import ChecksumError, MalformedError, TruncatedError, UnsupportedVersionError

MAX_CHUNK_BYTES = 1 << 28  # 256 MiB: a larger length field can only be damage
AUDIO_PIECE_BYTES = 1 << 20  # audio is split into chunks of at most 1 MiB
ANCILLARY_BIT = 0x80  # chunk types with this bit set may be skipped by a decoder that lacks them
MIN_BASE_SIDE = 64  # a base layer's coded side is at least this (FORMAT.md, SEGMENT)
MAX_CUT_MODELS = 64  # a CUT chunk naming more models than this is damage


class ChunkType(IntEnum):
    SEGMENT = 0x01  # starts a base-layer segment: codec, coded size, extradata
    GOP = 0x02  # one GOP's side info (range coded)
    BASE = 0x03  # base-layer elementary stream bytes, in decode order
    AUDIO = 0x04  # a piece of the audio track (an audio-only Matroska, pieces concatenated)
    SAMPLES = 0x05  # one GOP's mask indices and masked samples (range coded)
    WIENER = 0x06  # the next GOP's Wiener filters (range coded)
    CUT = 0x08  # starts an independent segment: its base codec, qp, threads and models
    END = 0x7F  # last chunk: totals; a stream without it is truncated
    ROI = 0x86  # ancillary: one GOP's region-of-interest map (range coded)


@dataclass(frozen=True)
class Segment:
    codec: str  # base-layer codec: "x265", "x264", "av1"
    width: int  # coded size of the base layer
    height: int
    extradata: bytes = b""


@dataclass(frozen=True)
class Cut:
    """Starts an independent segment (format 9): every chunk up to the next CUT or END
    belongs to it, and it decodes without anything before it. ``base``: its base codec;
    ``qp``: the quality it was coded at; ``threads``: the base encoder's threads (its bytes
    depend on them); ``models``: the header's models it uses (names); ``target``: what the
    user asked of it, as text (``qp 32``, ``size 25000000``, ``psnr 38.0``)."""

    first_gop: int
    first_frame: int
    frames: int
    base: str
    qp: int
    threads: int
    models: tuple[str, ...] = ()
    target: str = ""


@dataclass(frozen=True)
class GopChunk:
    index: int
    first_frame: int
    n_frames: int
    side_info: bytes


@dataclass(frozen=True)
class BaseData:
    """Base-layer elementary stream bytes (packets concatenated, in decode order)."""

    data: bytes


@dataclass(frozen=True)
class Samples:
    """The mask codec's payload for GOP ``gop``: mask indices and samples, range coded."""

    gop: int
    data: bytes


@dataclass(frozen=True)
class Wiener:
    """The Wiener filters of GOP ``gop`` (its three planes' modes and coefficients, range
    coded); it comes right before that GOP's GOP chunk."""

    gop: int
    data: bytes


@dataclass(frozen=True)
class Roi:
    """GOP ``gop``'s region-of-interest map: ``source`` (an index into the codec's ROI
    sources), its grid of ``rows`` x ``cols`` cells, and the range-coded cells."""

    gop: int
    source: int
    rows: int
    cols: int
    data: bytes


@dataclass(frozen=True)
class AudioPiece:
    data: bytes


@dataclass(frozen=True)
class End:
    frame_count: int
    gop_count: int


Chunk = Segment | Cut | GopChunk | BaseData | Samples | Wiener | Roi | AudioPiece | End


def _stream_size(stream: BinaryIO) -> int | None:
    """The bytes from the stream's position to its end, or None when it cannot seek."""
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end - here


# --- chunks --------------------------------------------------------------------------------


def encode_chunk(chunk: Chunk) -> bytes:
    ctype, payload = _encode_payload(chunk)
    head = ByteWriter().u8(ctype).varint(len(payload)).getvalue()
    return head + payload + zlib.crc32(head + payload).to_bytes(4, "little")


def _encode_payload(chunk: Chunk) -> tuple[int, bytes]:
    w = ByteWriter()
    if isinstance(chunk, Segment):
        w.text(chunk.codec).varint(chunk.width).varint(chunk.height).blob(chunk.extradata)
        return ChunkType.SEGMENT, w.getvalue()
    if isinstance(chunk, Cut):
        w.varint(chunk.first_gop).varint(chunk.first_frame).varint(chunk.frames)
        w.text(chunk.base).varint(chunk.qp).varint(chunk.threads).varint(len(chunk.models))
        for name in chunk.models:
            w.text(name)
        return ChunkType.CUT, w.text(chunk.target).getvalue()
    if isinstance(chunk, GopChunk):
        w.varint(chunk.index).varint(chunk.first_frame).varint(chunk.n_frames)
        return ChunkType.GOP, w.raw(chunk.side_info).getvalue()
    if isinstance(chunk, BaseData):
        return ChunkType.BASE, chunk.data
    if isinstance(chunk, Samples):
        return ChunkType.SAMPLES, w.varint(chunk.gop).raw(chunk.data).getvalue()
    if isinstance(chunk, Wiener):
        return ChunkType.WIENER, w.varint(chunk.gop).raw(chunk.data).getvalue()
    if isinstance(chunk, Roi):
        w.varint(chunk.gop).u8(chunk.source).varint(chunk.rows).varint(chunk.cols)
        return ChunkType.ROI, w.raw(chunk.data).getvalue()
    if isinstance(chunk, AudioPiece):
        return ChunkType.AUDIO, chunk.data
    if isinstance(chunk, End):
        return ChunkType.END, w.varint(chunk.frame_count).varint(chunk.gop_count).getvalue()
    raise TypeError(f"not a chunk: {chunk!r}")


def _decode_payload(ctype: int, payload: bytes, where: str) -> Chunk | None:
    r = ByteReader(payload, where)
    if ctype == ChunkType.SEGMENT:
        out: Chunk = Segment(r.text(), r.varint(), r.varint(), r.blob())
    elif ctype == ChunkType.CUT:
        first_gop, first_frame, frames = r.varint(), r.varint(), r.varint()
        base, qp, threads = r.text(), r.varint(), r.varint()
        count = r.varint()
        if count > MAX_CUT_MODELS:
            raise MalformedError(f"{where}: {count} models is implausible, the file is damaged")
        models = tuple(r.text() for _ in range(count))
        out = Cut(first_gop, first_frame, frames, base, qp, threads, models, r.text())
    elif ctype == ChunkType.GOP:
        out = GopChunk(r.varint(), r.varint(), r.varint(), r.rest())
    elif ctype == ChunkType.BASE:
        out = BaseData(r.rest())
    elif ctype == ChunkType.SAMPLES:
        out = Samples(r.varint(), r.rest())
    elif ctype == ChunkType.WIENER:
        out = Wiener(r.varint(), r.rest())
    elif ctype == ChunkType.ROI:
        out = Roi(r.varint(), r.u8(), r.varint(), r.varint(), r.rest())
    elif ctype == ChunkType.AUDIO:
        out = AudioPiece(r.rest())
    elif ctype == ChunkType.END:
        out = End(r.varint(), r.varint())
    elif ctype & ANCILLARY_BIT:
        return None  # an optional chunk from a newer encoder: skip it
    else:
        raise UnsupportedVersionError(
            f"{where}: chunk type 0x{ctype:02x} is unknown and required; a newer vcodec may read it"
        )
    r.expect_end()
    return out


class VcxWriter:
    """Writes a .vcx stream: the header at once, then chunks; close() writes the END chunk."""

    def __init__(self, stream: BinaryIO, header: StreamHeader) -> None:
        self.stream = stream
        self.header = header
        self.bytes_written = stream.write(encode_header(header))
        self.frames = 0
        self.gops = 0

    def write(self, chunk: Chunk) -> None:
        if isinstance(chunk, End):
            raise ValueError("the END chunk is written by close()")
        if isinstance(chunk, GopChunk):
            self.frames += chunk.n_frames
            self.gops += 1
        self.bytes_written += self.stream.write(encode_chunk(chunk))

    def write_audio(self, data: bytes) -> None:
        for start in range(0, len(data), AUDIO_PIECE_BYTES):
            self.write(AudioPiece(data[start : start + AUDIO_PIECE_BYTES]))

    def close(self) -> None:
        self.bytes_written += self.stream.write(encode_chunk(End(self.frames, self.gops)))


class VcxReader:
    """Reads a .vcx stream: ``header`` on construction, then iterate for the chunks.

    Iteration checks every CRC, the order of GOPs, the END totals, and that nothing
    follows END; it skips unknown ancillary chunks and raises a VcxError on anything else.
    ``limits`` are checked on the header before anything is read or allocated for the
    stream (LimitError), and each chunk's length against the bytes the file has left.
    """

    def __init__(self, stream: BinaryIO, limits: StreamLimits | None = None) -> None:
        self.stream = stream
        self.size = _stream_size(stream)
        self.header, self.offset, self.version = read_header(stream)
        (limits or StreamLimits()).check(self.header)

    def __iter__(self) -> Iterator[Chunk]:
        frames = gops = samples = rois = 0
        wiener = -1  # the GOP of the last WIENER chunk
        self.cut: Cut | None = None  # the segment the chunks now read belong to
        for number in range(1 << 62):
            chunk = self._next_chunk(number)
            if chunk is None:
                continue
            if isinstance(chunk, GopChunk):
                self._check_gop(chunk, number, gops, frames)
                frames += chunk.n_frames
                gops += 1
            elif isinstance(chunk, Samples):
                if not chunk.gop == samples < gops:
                    raise MalformedError(
                        f"chunk #{number}: SAMPLES of GOP {chunk.gop} out of order"
                    )
                samples += 1
            elif isinstance(chunk, Wiener):
                if not chunk.gop == gops > wiener:
                    raise MalformedError(f"chunk #{number}: WIENER of GOP {chunk.gop} out of order")
                wiener = chunk.gop
            elif isinstance(chunk, Segment):
                self._check_segment(chunk, number)
            elif isinstance(chunk, Cut):
                self._check_cut(chunk, number, gops, frames)
                self.cut = chunk
            elif isinstance(chunk, Roi):
                if not chunk.gop == rois < gops:
                    raise MalformedError(f"chunk #{number}: ROI of GOP {chunk.gop} out of order")
                rois += 1
            if isinstance(chunk, End):
                self._check_cut_end(f"chunk #{number} (END)", frames)
            if isinstance(chunk, End) and wiener >= gops:
                raise MalformedError(
                    f"the stream ends before GOP {wiener}, which has a WIENER chunk"
                )
            yield chunk
            if isinstance(chunk, End):
                if (chunk.frame_count, chunk.gop_count) != (frames, gops):
                    raise MalformedError(
                        f"END chunk says {chunk.frame_count} frames in {chunk.gop_count} GOPs, "
                        f"the stream holds {frames} in {gops}"
                    )
                if self.stream.read(1):
                    raise MalformedError("unexpected bytes after the END chunk")
                return

    def _next_chunk(self, number: int) -> Chunk | None:
        start = self.offset
        head = self.stream.read(1)
        if not head:
            raise TruncatedError(f"the stream ends after chunk #{number - 1} with no END chunk")
        ctype = head[0]
        name = ChunkType(ctype).name if ctype in ChunkType._value2member_map_ else f"0x{ctype:02x}"
        where = f"chunk #{number} ({name}) at byte {start}"
        size, size_bytes = read_varint(self.stream, f"{where} length")
        head += size_bytes
        if size > MAX_CHUNK_BYTES:
            raise MalformedError(f"{where}: length {size} is implausible, the file is damaged")
        end = start + len(head) + size + 4
        if self.size is not None and end > self.size:
            raise TruncatedError(
                f"{where}: its length {size} runs {end - self.size} bytes past the end of the "
                "file (truncated or damaged)"
            )
        payload = read_exact(self.stream, size, where)
        crc = int.from_bytes(read_exact(self.stream, 4, f"{where} checksum"), "little")
        if zlib.crc32(head + payload) != crc:
            raise ChecksumError(f"{where}: CRC32 mismatch, the file is damaged")
        self.offset = start + len(head) + size + 4
        return _decode_payload(ctype, payload, where)

    def _check_gop(self, chunk: GopChunk, number: int, gops: int, frames: int) -> None:
        if chunk.index != gops or chunk.first_frame != frames:
            raise MalformedError(f"chunk #{number}: GOP {chunk.index} is out of order")
        if not 1 <= chunk.n_frames <= self.header.gop_size:
            raise MalformedError(f"chunk #{number}: GOP of {chunk.n_frames} frames")

    def _check_cut(self, chunk: Cut, number: int, gops: int, frames: int) -> None:
        """A CUT (format 9 on) starts where the last segment ended, names a known base codec
        and only models the header names."""
        where = f"chunk #{number} (CUT)"
        if self.version < CUT_VERSION:
            raise MalformedError(f"{where} in a format {self.version} stream")
        self._check_cut_end(where, frames)
        if (chunk.first_gop, chunk.first_frame) != (gops, frames) or chunk.frames < 1:
            raise MalformedError(f"{where}: a segment out of order")
        if chunk.base not in BASE_CODECS or not 0 <= chunk.qp <= 63:
            raise MalformedError(f"{where}: base codec {chunk.base!r} or qp {chunk.qp}")
        unknown = [m for m in chunk.models if m not in self.header.models]
        if unknown:
            raise MalformedError(f"{where}: model {unknown[0]!r} is not in the header")

    def _check_cut_end(self, where: str, frames: int) -> None:
        """The segment read so far holds the frames its CUT said."""
        if self.cut is not None and frames != self.cut.first_frame + self.cut.frames:
            raise MalformedError(
                f"{where}: the segment before holds {frames - self.cut.first_frame} frames, "
                f"its CUT says {self.cut.frames}"
            )

    def _check_segment(self, chunk: Segment, number: int) -> None:
        """The base codec is its segment's (the CUT's; before any, the header's), and the
        coded size at most the full-scale one."""
        h = self.header
        base = self.cut.base if self.cut is not None else h.base_codec
        if chunk.codec != base:
            raise MalformedError(
                f"chunk #{number} (SEGMENT): base codec {chunk.codec!r} is not its segment's "
                f"{base!r}: the file is damaged"
            )
        most = (
            max(MIN_BASE_SIDE, h.width + h.width % 2),
            max(MIN_BASE_SIDE, h.height + h.height % 2),
        )
        if not (1 <= chunk.width <= most[0] and 1 <= chunk.height <= most[1]):
            raise MalformedError(
                f"chunk #{number} (SEGMENT): a coded size of {chunk.width}x{chunk.height} does "
                f"not fit frames of {h.width}x{h.height}"
            )
