"""Surgery on .vcx bytes for tests: split a stream into header and raw chunks, change them,
join them back with every length and CRC32 recomputed (so only the reader's checks stand)."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, replace

from vcodec.bitstream.container import MAGIC, StreamHeader, VcxReader, encode_header
from vcodec.bitstream.fields import ByteReader, ByteWriter


@dataclass
class RawStream:
    """A stream as its parts: the format version, the metadata block and (type, payload)
    chunks, none of them checked beyond their framing."""

    version: int
    metadata: bytes
    chunks: list[tuple[int, bytes]]

    def to_bytes(self) -> bytes:
        body = ByteWriter().varint(len(self.metadata)).raw(self.metadata).getvalue()
        head = MAGIC + bytes([self.version]) + body
        out = [head, zlib.crc32(head).to_bytes(4, "little")]
        for ctype, payload in self.chunks:
            frame = ByteWriter().u8(ctype).varint(len(payload)).raw(payload).getvalue()
            out += [frame, zlib.crc32(frame).to_bytes(4, "little")]
        return b"".join(out)


def split(data: bytes) -> RawStream:
    """The parts of a well-formed stream (CRCs are not checked here)."""
    r = ByteReader(data, "test stream")
    r.take(len(MAGIC))
    version = r.u8()
    metadata = r.blob()
    r.take(4)
    chunks = []
    while r.remaining:
        ctype, payload = r.u8(), r.blob()
        r.take(4)
        chunks.append((ctype, payload))
    return RawStream(version, metadata, chunks)


def with_header(data: bytes, **fields: object) -> bytes:
    """The stream with header fields replaced (the header re-encoded, its CRC recomputed)."""
    reader = VcxReader(io.BytesIO(data))
    header: StreamHeader = replace(reader.header, **fields)
    return encode_header(header) + data[reader.offset :]
