"""Length-checked byte fields: every read of a .vcx field goes through ByteReader.take."""

from __future__ import annotations

import struct

from vcodec.errors import MalformedError, TruncatedError

MAX_VARINT_BYTES = 10  # a LEB128 varint of up to 64 bits


class ByteWriter:
    """Appends little-endian fields to a growing buffer."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, value: int) -> ByteWriter:
        self._buf += struct.pack("<B", value)
        return self

    def u32(self, value: int) -> ByteWriter:
        self._buf += struct.pack("<I", value)
        return self

    def varint(self, value: int) -> ByteWriter:
        """Unsigned LEB128: 7 bits a byte, high bit set on all bytes but the last."""
        if value < 0:
            raise ValueError(f"varint must be non-negative, got {value}")
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                self._buf.append(byte | 0x80)
            else:
                self._buf.append(byte)
                return self

    def blob(self, data: bytes) -> ByteWriter:
        """A varint length, then the bytes."""
        self.varint(len(data))
        self._buf += data
        return self

    def text(self, value: str) -> ByteWriter:
        return self.blob(value.encode("utf-8"))

    def raw(self, data: bytes) -> ByteWriter:
        self._buf += data
        return self

    def getvalue(self) -> bytes:
        return bytes(self._buf)


class ByteReader:
    """Reads fields from a bytes object; running past the end raises TruncatedError.

    ``what`` names the structure being read, so errors say where the damage is.
    """

    def __init__(self, data: bytes, what: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        """The one place that reads: n bytes or TruncatedError."""
        if n < 0 or n > self.remaining:
            raise TruncatedError(
                f"{self.what}: needs {n} bytes at offset {self._pos}, only {self.remaining} left"
            )
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def varint(self) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise MalformedError(f"{self.what}: a varint runs over {MAX_VARINT_BYTES} bytes")

    def blob(self) -> bytes:
        return self.take(self.varint())

    def text(self) -> str:
        raw = self.blob()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError(f"{self.what}: a text field is not UTF-8") from exc

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def expect_end(self) -> None:
        if self.remaining:
            raise MalformedError(f"{self.what}: {self.remaining} unexpected bytes at the end")
