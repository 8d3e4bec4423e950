"""The .vcx container: versioned header + metadata, then typed, CRC32-checked chunks (FORMAT.md)."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import BinaryIO

from vcodec.bitstream.fields import MAX_VARINT_BYTES, ByteReader, ByteWriter
from vcodec.errors import (
    BadMagicError,
    ChecksumError,
    LimitError,
    MalformedError,
    TruncatedError,
    UnsupportedVersionError,
)

MAGIC = b"VCX"
# the byte after the magic; 2 added SAMPLES chunks, 3 the post strength, 4 the temporal step,
# 5 WIENER chunks, 6 short model ids and luma taps in the chroma Wiener filters, 7 the temporal
# step symbol in every hybrid GOP
FORMAT_VERSION = 7
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7)  # a decoder refuses any other value
METADATA_VERSION = 1  # "metadata_version" inside the metadata block
MAX_CHUNK_BYTES = 1 << 28  # 256 MiB: a larger length field can only be damage
MAX_METADATA_BYTES = 1 << 16  # 64 KiB
AUDIO_PIECE_BYTES = 1 << 20  # audio is split into chunks of at most 1 MiB
ANCILLARY_BIT = 0x80  # chunk types with this bit set may be skipped by a decoder that lacks them
MODEL_ID_BYTES = 4  # a model id's bytes from SHORT_ID_VERSION (the whole sha256, 32, before)
SHORT_ID_VERSION = 6
MODES = ("hybrid", "pure")
PIX_FMTS = ("yuv420p",)
BASE_CODECS = ("x265", "x264", "av1")  # the base-layer codecs a stream may name
MIN_BASE_SIDE = 64  # a base layer's coded side is at least this (FORMAT.md, SEGMENT)
MAX_NOTES = 16  # notes in the metadata (what the encoder changed or found in its input)
MAX_NOTE_BYTES = 512
READ_PIECE_BYTES = 1 << 20  # a chunk is read in pieces, so a false length allocates nothing
DEFAULT_MAX_PIXELS = 8192 * 4320  # 8K: a larger frame is refused unless the limit is raised
DEFAULT_MAX_GOP_FRAMES = 64  # vcodec writes GOPs of 16; the format allows up to 256


@dataclass(frozen=True)
class StreamLimits:
    """What a reader accepts before it allocates anything for a stream: the decoder holds one
    GOP of at most ``max_gop_frames`` frames of at most ``max_pixels`` pixels (and the
    networks' tiles over it), so these bound its memory."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # width x height of a frame
    max_gop_frames: int = DEFAULT_MAX_GOP_FRAMES

    def check(self, header: StreamHeader) -> None:
        """LimitError when ``header`` asks for more than these limits."""
        w, h = header.width, header.height
        if w * h > self.max_pixels:
            raise LimitError(
                f"the stream's frames are {w}x{h} ({w * h:,} pixels), over this decoder's "
                f"limit of {self.max_pixels:,} pixels (--max-pixels raises it)"
            )
        if header.gop_size > self.max_gop_frames:
            raise LimitError(
                f"the stream's GOPs hold {header.gop_size} frames, over this decoder's limit of "
                f"{self.max_gop_frames}"
            )


class ChunkType(IntEnum):
    SEGMENT = 0x01  # starts a base-layer segment: codec, coded size, extradata
    GOP = 0x02  # one GOP's side info (range coded)
    BASE = 0x03  # base-layer elementary stream bytes, in decode order
    AUDIO = 0x04  # a piece of the audio track (an audio-only Matroska, pieces concatenated)
    SAMPLES = 0x05  # one GOP's mask indices and masked samples (range coded)
    WIENER = 0x06  # the next GOP's Wiener filters (range coded)
    END = 0x7F  # last chunk: totals; a stream without it is truncated
    ROI = 0x86  # ancillary: one GOP's region-of-interest map (range coded)


@dataclass(frozen=True)
class StreamHeader:
    """The metadata block: everything a decoder must know before the first chunk."""

    width: int
    height: int
    fps_num: int
    fps_den: int
    color_range: int = 0
    colorspace: int = 2
    color_primaries: int = 2
    color_trc: int = 2
    pix_fmt: str = "yuv420p"
    gop_size: int = 16
    mode: str = "hybrid"
    base_codec: str = "x265"
    qp: int = 32
    # model name -> model id: the first MODEL_ID_BYTES of its weights' sha256, in hex (streams
    # of versions 1-5 carry the whole digest)
    models: dict[str, str] = field(default_factory=dict)
    encoder: str = ""
    # what the encoder changed or found in its input (a truncated input, a converted pixel
    # format, a variable frame rate made constant): shown by `vcodec info`
    notes: tuple[str, ...] = ()

    def validate(self) -> StreamHeader:
        checks = [
            (1 <= self.width <= 65535 and 1 <= self.height <= 65535, "frame size"),
            (self.fps_num > 0 and self.fps_den > 0, "frame rate"),
            (1 <= self.gop_size <= 256, "GOP size"),
            (self.mode in MODES, "mode"),
            (self.pix_fmt in PIX_FMTS, "pixel format"),
            (self.base_codec in BASE_CODECS, "base codec"),
            (len(self.notes) <= MAX_NOTES, "note count"),
            (all(len(n.encode()) <= MAX_NOTE_BYTES for n in self.notes), "note length"),
            (0 <= self.qp <= 63, "qp"),
            (all(0 <= c <= 255 for c in self._colour()), "colour description"),
            (all(_is_model_id(v) for v in self.models.values()), "model id"),
        ]
        for ok, name in checks:
            if not ok:
                raise MalformedError(f"metadata: invalid {name}")
        return self

    def _colour(self) -> tuple[int, int, int, int]:
        return self.color_range, self.colorspace, self.color_primaries, self.color_trc


def _is_model_id(value: str) -> bool:
    return len(value) in (2 * MODEL_ID_BYTES, 64) and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True)
class Segment:
    codec: str  # base-layer codec: "x265", "x264", "av1"
    width: int  # coded size of the base layer
    height: int
    extradata: bytes = b""


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


Chunk = Segment | GopChunk | BaseData | Samples | Wiener | Roi | AudioPiece | End


# --- header --------------------------------------------------------------------------------


def encode_header(header: StreamHeader) -> bytes:
    """Magic, format version, then the metadata block (FORMAT.md) and its CRC32."""
    h = header.validate()
    if any(len(model_id) != 2 * MODEL_ID_BYTES for model_id in h.models.values()):
        raise ValueError(f"a model id of this format version is {MODEL_ID_BYTES} bytes")
    w = ByteWriter().varint(METADATA_VERSION)
    for value in (h.width, h.height, h.fps_num, h.fps_den):
        w.varint(value)
    for value in (h.color_range, h.colorspace, h.color_primaries, h.color_trc):
        w.u8(value)
    w.u8(PIX_FMTS.index(h.pix_fmt)).varint(h.gop_size).u8(MODES.index(h.mode))
    w.text(h.base_codec).varint(h.qp).varint(len(h.models))
    for name, model_id in sorted(h.models.items()):
        w.text(name).blob(bytes.fromhex(model_id))
    w.text(h.encoder)
    if h.notes:  # an optional field after the encoder's: readers before it skip it
        w.varint(len(h.notes))
        for note in h.notes:
            w.text(note)
    body = w.getvalue()
    head = MAGIC + bytes([FORMAT_VERSION]) + ByteWriter().varint(len(body)).getvalue() + body
    return head + zlib.crc32(head).to_bytes(4, "little")


def read_header(stream: BinaryIO) -> tuple[StreamHeader, int, int]:
    """The header, its size in bytes (where the first chunk starts) and the format version."""
    prefix = stream.read(len(MAGIC) + 1)
    if prefix[: len(MAGIC)] != MAGIC[: len(prefix)] or not prefix:
        raise BadMagicError("not a .vcx stream (bad magic bytes)")
    prefix = _read_exact(stream, len(MAGIC) + 1, "header", prefix)
    version = prefix[len(MAGIC)]
    if version not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"format version {version} is not supported (this vcodec reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); a newer vcodec may read it"
        )
    size, size_bytes = _read_varint(stream, "header")
    if size > MAX_METADATA_BYTES:
        raise MalformedError(f"metadata block of {size} bytes is implausible: damaged header")
    body = _read_exact(stream, size, "metadata")
    crc = int.from_bytes(_read_exact(stream, 4, "metadata checksum"), "little")
    if zlib.crc32(prefix + size_bytes + body) != crc:
        raise ChecksumError("metadata block: CRC32 mismatch, the header is damaged")
    return _parse_metadata(body, version), len(prefix) + len(size_bytes) + size + 4, version


def _parse_metadata(body: bytes, format_version: int) -> StreamHeader:
    r = ByteReader(body, "metadata")
    version = r.varint()
    if version != METADATA_VERSION:
        raise UnsupportedVersionError(f"metadata version {version} is not supported")
    width, height, fps_num, fps_den = (r.varint() for _ in range(4))
    colour = [r.u8() for _ in range(4)]
    pix_fmt, gop_size, mode = r.u8(), r.varint(), r.u8()
    if pix_fmt >= len(PIX_FMTS) or mode >= len(MODES):
        raise MalformedError("metadata: unknown pixel format or mode")
    base_codec, qp = r.text(), r.varint()
    models = {r.text(): r.blob().hex() for _ in range(r.varint())}
    id_bytes = MODEL_ID_BYTES if format_version >= SHORT_ID_VERSION else 32
    if any(len(model_id) != 2 * id_bytes for model_id in models.values()):
        raise MalformedError(f"metadata: a model id is not {id_bytes} bytes")
    encoder = r.text()
    notes = tuple(r.text() for _ in range(_note_count(r))) if r.remaining else ()
    # bytes after the known fields: a later revision of version 1 may add them; ignore
    return StreamHeader(
        width,
        height,
        fps_num,
        fps_den,
        *colour,
        PIX_FMTS[pix_fmt],
        gop_size,
        MODES[mode],
        base_codec,
        qp,
        models,
        encoder,
        notes,
    ).validate()


def _note_count(r: ByteReader) -> int:
    count = r.varint()
    if count > MAX_NOTES:
        raise MalformedError(f"metadata: {count} notes, at most {MAX_NOTES} are allowed")
    return count


def _read_varint(stream: BinaryIO, what: str) -> tuple[int, bytes]:
    """A varint read byte by byte from a stream: its value and its bytes."""
    raw = b""
    for _ in range(MAX_VARINT_BYTES):
        raw += _read_exact(stream, 1, what)
        if not raw[-1] & 0x80:
            break
    return ByteReader(raw, what).varint(), raw


def _read_exact(stream: BinaryIO, n: int, what: str, already: bytes = b"") -> bytes:
    """n bytes, read in pieces: memory grows with the bytes that are there, not with n."""
    parts, have = [already], len(already)
    while have < n:
        part = stream.read(min(n - have, READ_PIECE_BYTES))
        if not part:
            raise TruncatedError(f"{what}: the stream ends after {have} of {n} bytes")
        parts.append(part)
        have += len(part)
    return b"".join(parts)


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
            elif isinstance(chunk, Roi):
                if not chunk.gop == rois < gops:
                    raise MalformedError(f"chunk #{number}: ROI of GOP {chunk.gop} out of order")
                rois += 1
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
        size, size_bytes = _read_varint(self.stream, f"{where} length")
        head += size_bytes
        if size > MAX_CHUNK_BYTES:
            raise MalformedError(f"{where}: length {size} is implausible, the file is damaged")
        end = start + len(head) + size + 4
        if self.size is not None and end > self.size:
            raise TruncatedError(
                f"{where}: its length {size} runs {end - self.size} bytes past the end of the "
                "file (truncated or damaged)"
            )
        payload = _read_exact(self.stream, size, where)
        crc = int.from_bytes(_read_exact(self.stream, 4, f"{where} checksum"), "little")
        if zlib.crc32(head + payload) != crc:
            raise ChecksumError(f"{where}: CRC32 mismatch, the file is damaged")
        self.offset = start + len(head) + size + 4
        return _decode_payload(ctype, payload, where)

    def _check_gop(self, chunk: GopChunk, number: int, gops: int, frames: int) -> None:
        if chunk.index != gops or chunk.first_frame != frames:
            raise MalformedError(f"chunk #{number}: GOP {chunk.index} is out of order")
        if not 1 <= chunk.n_frames <= self.header.gop_size:
            raise MalformedError(f"chunk #{number}: GOP of {chunk.n_frames} frames")

    def _check_segment(self, chunk: Segment, number: int) -> None:
        """The base codec is the header's, and the coded size at most the full-scale one."""
        h = self.header
        if chunk.codec != h.base_codec:
            raise MalformedError(
                f"chunk #{number} (SEGMENT): base codec {chunk.codec!r} is not the header's "
                f"{h.base_codec!r}: the file is damaged"
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
