"""The .vcx header: magic, format version and the metadata block, and the limits a reader
checks it against before it allocates anything (FORMAT.md)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
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
# step symbol in every hybrid GOP, 8 temporal steps 4 and 8, 9 CUT chunks (independent
# segments, each with its own base codec, qp and models)
FORMAT_VERSION = 9
CUT_VERSION = 9
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9)  # a decoder refuses any other value
METADATA_VERSION = 1  # "metadata_version" inside the metadata block
MAX_METADATA_BYTES = 1 << 16  # 64 KiB
MODEL_ID_BYTES = 4  # a model id's bytes from SHORT_ID_VERSION (the whole sha256, 32, before)
SHORT_ID_VERSION = 6
MODES = ("hybrid", "pure")
# what the stream was coded for (`vcodec encode --task`); the index is the task byte
TASKS = ("none", "detect", "segment", "track")
PIX_FMTS = ("yuv420p",)
BASE_CODECS = ("x265", "x264", "av1")  # the base-layer codecs a stream may name
MAX_NOTES = 16  # notes in the metadata (what the encoder changed or found in its input)
MAX_NOTE_BYTES = 512
READ_PIECE_BYTES = 1 << 20  # a chunk is read in pieces, so a false length allocates nothing
DEFAULT_MAX_PIXELS = 8192 * 4320  # 8K: a larger frame is refused unless the limit is raised
DEFAULT_MAX_GOP_FRAMES = 64  # vcodec writes GOPs of 16; the format allows up to 256


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
    # the machine task the encoder tuned the stream for (TASKS): shown by `vcodec info`; the
    # decoder does not need it
    task: str = "none"

    def validate(self) -> StreamHeader:
        checks = [
            (1 <= self.width <= 65535 and 1 <= self.height <= 65535, "frame size"),
            (self.fps_num > 0 and self.fps_den > 0, "frame rate"),
            (1 <= self.gop_size <= 256, "GOP size"),
            (self.mode in MODES, "mode"),
            (self.pix_fmt in PIX_FMTS, "pixel format"),
            (self.base_codec in BASE_CODECS, "base codec"),
            (len(self.notes) <= MAX_NOTES, "note count"),
            (self.task in TASKS, "task"),
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
    if h.notes or h.task != "none":  # optional fields after the encoder's: readers before
        w.varint(len(h.notes))  # them skip them
        for note in h.notes:
            w.text(note)
    if h.task != "none":
        w.u8(TASKS.index(h.task))
    body = w.getvalue()
    head = MAGIC + bytes([FORMAT_VERSION]) + ByteWriter().varint(len(body)).getvalue() + body
    return head + zlib.crc32(head).to_bytes(4, "little")


def read_header(stream: BinaryIO) -> tuple[StreamHeader, int, int]:
    """The header, its size in bytes (where the first chunk starts) and the format version."""
    prefix = stream.read(len(MAGIC) + 1)
    if prefix[: len(MAGIC)] != MAGIC[: len(prefix)] or not prefix:
        raise BadMagicError("not a .vcx stream (bad magic bytes)")
    prefix = read_exact(stream, len(MAGIC) + 1, "header", prefix)
    version = prefix[len(MAGIC)]
    if version not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"format version {version} is not supported (this vcodec reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); a newer vcodec may read it"
        )
    size, size_bytes = read_varint(stream, "header")
    if size > MAX_METADATA_BYTES:
        raise MalformedError(f"metadata block of {size} bytes is implausible: damaged header")
    body = read_exact(stream, size, "metadata")
    crc = int.from_bytes(read_exact(stream, 4, "metadata checksum"), "little")
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
    task = r.u8() if r.remaining else 0
    if task >= len(TASKS):
        raise MalformedError(f"metadata: unknown task {task}")
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
        TASKS[task],
    ).validate()


def _note_count(r: ByteReader) -> int:
    count = r.varint()
    if count > MAX_NOTES:
        raise MalformedError(f"metadata: {count} notes, at most {MAX_NOTES} are allowed")
    return count


def read_varint(stream: BinaryIO, what: str) -> tuple[int, bytes]:
    """A varint read byte by byte from a stream: its value and its bytes."""
    raw = b""
    for _ in range(MAX_VARINT_BYTES):
        raw += read_exact(stream, 1, what)
        if not raw[-1] & 0x80:
            break
    return ByteReader(raw, what).varint(), raw


def read_exact(stream: BinaryIO, n: int, what: str, already: bytes = b"") -> bytes:
    """n bytes, read in pieces: memory grows with the bytes that are there, not with n."""
    parts, have = [already], len(already)
    while have < n:
        part = stream.read(min(n - have, READ_PIECE_BYTES))
        if not part:
            raise TruncatedError(f"{what}: the stream ends after {have} of {n} bytes")
        parts.append(part)
        have += len(part)
    return b"".join(parts)
