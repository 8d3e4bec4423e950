"""Fuzzing the decoder: seeded mutants of a small real stream, their CRCs recomputed so that
only the reader's and the decoder's own checks stand between a hostile file and the codec."""

from __future__ import annotations

import io
import random
import resource
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import write_test_clip
from streams import RawStream, split

from vcodec.bitstream.container import (
    BASE_CODECS,
    StreamLimits,
    VcxReader,
    encode_header,
    read_header,
)
from vcodec.bitstream.fields import ByteWriter
from vcodec.errors import VcxError
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode
from vcodec.pipeline.info import describe

SEED = 17
WIDTH, HEIGHT = 64, 48
# the streams fuzzed, and how many mutants of each: a hybrid stream with every chunk type
# (audio, segment, base layer, Wiener filters, GOPs, ROI maps) and a pure one (mask samples,
# whose reconstruction network makes each decode ~0.2 s)
STREAMS = {
    "hybrid": (
        EncodeConfig(
            speed="slow", qp=24, roi="motion", masks=True, post=True, predict_net=True, device="cpu"
        ),
        300,
    ),
    "pure": (EncodeConfig(mode="pure", device="cpu"), 100),
}
# the fuzzed decoder's limits: a mutated header may ask for at most 4x the real frame size
LIMITS = StreamLimits(max_pixels=4 * WIDTH * HEIGHT, max_gop_frames=16)
RSS_GROWTH_MIB = 512  # all mutants together may raise the process's peak memory this much


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "in.mp4"
    write_test_clip(path, WIDTH, HEIGHT, 20, audio=True)
    return path


def _stream(clip: Path, kind: str) -> bytes:
    encode(clip, clip.with_name(f"{kind}.vcx"), STREAMS[kind][0], force=True)
    return clip.with_name(f"{kind}.vcx").read_bytes()


Mutation = Callable[[RawStream, random.Random], str]


def _payload_bits(raw: RawStream, rng: random.Random) -> str:
    i = rng.randrange(len(raw.chunks))
    ctype, payload = raw.chunks[i]
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    raw.chunks[i] = (ctype, bytes(data))
    return f"bits of chunk #{i} (0x{ctype:02x})"


def _payload_bytes(raw: RawStream, rng: random.Random) -> str:
    i = rng.randrange(len(raw.chunks))
    ctype, payload = raw.chunks[i]
    data = bytearray(payload)
    if data:
        at = rng.randrange(len(data))
        data[at] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    raw.chunks[i] = (ctype, bytes(data))
    return f"a byte of chunk #{i} (0x{ctype:02x})"


def _resize(raw: RawStream, rng: random.Random) -> str:
    i = rng.randrange(len(raw.chunks))
    ctype, payload = raw.chunks[i]
    if rng.random() < 0.5:
        payload = payload[: rng.randrange(len(payload) + 1)]
    else:
        payload += rng.randbytes(rng.randint(1, 64))
    raw.chunks[i] = (ctype, payload)
    return f"length of chunk #{i} (0x{ctype:02x})"


def _huge_varint(raw: RawStream, rng: random.Random) -> str:
    """The first field of a chunk (an index, a size, a codec name's length) made huge."""
    i = rng.randrange(len(raw.chunks))
    ctype, payload = raw.chunks[i]
    value = rng.choice((1 << 16, 1 << 31, 1 << 40, (1 << 63) - 1, rng.randrange(1 << 20)))
    head = ByteWriter().varint(value).getvalue()
    skip = next((n + 1 for n, b in enumerate(payload) if not b & 0x80), len(payload))
    raw.chunks[i] = (ctype, head + payload[skip:])
    return f"first varint of chunk #{i} (0x{ctype:02x}) = {value}"


def _order(raw: RawStream, rng: random.Random) -> str:
    i = rng.randrange(len(raw.chunks))
    op = rng.choice(("drop", "copy", "swap"))
    if op == "drop":
        del raw.chunks[i]
    elif op == "copy":
        raw.chunks.insert(rng.randrange(len(raw.chunks)), raw.chunks[i])
    elif i + 1 < len(raw.chunks):
        raw.chunks[i], raw.chunks[i + 1] = raw.chunks[i + 1], raw.chunks[i]
    return f"{op} chunk #{i}"


def _metadata(raw: RawStream, rng: random.Random) -> str:
    data = bytearray(raw.metadata)
    at = rng.randrange(len(data))
    data[at] = rng.randrange(256)
    raw.metadata = bytes(data)
    return f"metadata byte {at}"


def _header_field(raw: RawStream, rng: random.Random) -> str:
    """A valid header with one field changed: size (up to 65535x65535), GOP size, qp, mode,
    base codec, models."""
    header = read_header(io.BytesIO(raw.to_bytes()))[0]
    field, value = rng.choice(
        (
            ("width", rng.choice((1, 63, 65, 127, 128, 8192, 65535))),
            ("height", rng.choice((1, 47, 49, 95, 96, 4320, 65535))),
            ("gop_size", rng.choice((1, 2, 8, 15, 17, 64, 256))),
            ("qp", rng.randrange(64)),
            ("mode", "pure"),
            ("base_codec", rng.choice(BASE_CODECS)),
            ("models", {"recon-v1": "00000000"}),
        )
    )
    encoded = encode_header(replace(header, **{field: value}))
    raw.metadata = split(encoded).metadata
    return f"header {field} = {value}"


MUTATIONS: list[Mutation] = [
    _payload_bits,
    _payload_bits,
    _payload_bytes,
    _resize,
    _huge_varint,
    _order,
    _metadata,
    _header_field,
]


def _decode(data: bytes | Path) -> int:
    """Decode every frame; check each GOP against the header (and so against LIMITS)."""
    if isinstance(data, Path):  # `vcodec info`'s reading of a file
        return describe(data, LIMITS)["frames"]
    decoder = VcxDecoder(io.BytesIO(data), "cpu", LIMITS)
    h = decoder.header
    assert h.width * h.height <= LIMITS.max_pixels and h.gop_size <= LIMITS.max_gop_frames
    frames = 0
    for gop in decoder.gops():
        assert gop.y.shape[1:] == (h.height, h.width) and 1 <= gop.n_frames <= h.gop_size
        frames += gop.n_frames
    return frames


@pytest.mark.parametrize("kind", list(STREAMS))
def test_mutants_end_in_success_or_a_vcx_error(clip: Path, tmp_path: Path, kind: str) -> None:
    """Decoding (and `vcodec info`'s reading) of every mutant ends in frames that fit the
    header, or in a VcxError; never another exception, never memory beyond the limits."""
    stream = _stream(clip, kind)
    assert _decode(stream) == 20 and _decode(clip.with_name(f"{kind}.vcx")) == 20
    rng = random.Random(f"{SEED}-{kind}")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused, failures = 0, []
    for n in range(STREAMS[kind][1]):
        raw = split(stream)
        what = rng.choice(MUTATIONS)(raw, rng)
        (tmp_path / "m.vcx").write_bytes(raw.to_bytes())
        for source in (raw.to_bytes(), tmp_path / "m.vcx"):
            try:
                _decode(source)
            except VcxError:
                refused += isinstance(source, bytes)
            except Exception as exc:  # anything else is a bug the fuzzer found
                where = traceback.extract_tb(exc.__traceback__)[-1]
                failures.append(f"mutant {n} ({what}): {exc!r} at {where.filename}:{where.lineno}")
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert not failures, "\n".join(failures)
    assert refused > STREAMS[kind][1] // 3, refused  # the mutants do reach the checks
    assert growth_mib < RSS_GROWTH_MIB, growth_mib


def test_a_header_over_the_limits_is_refused_before_anything_is_read(clip: Path) -> None:
    stream = _stream(clip, "hybrid")
    raw = split(stream)
    header = VcxReader(io.BytesIO(stream)).header
    raw.metadata = split(encode_header(replace(header, width=65535, height=65535))).metadata

    class Unread(io.BytesIO):
        """Fails the test if anything past the header is read."""

        limit = len(raw.metadata) + 16

        def read(self, n: int | None = -1) -> bytes:
            assert self.tell() < self.limit, "read past the header"
            return super().read(n)

    with pytest.raises(VcxError, match="65535x65535"):
        VcxDecoder(Unread(raw.to_bytes()), "cpu", LIMITS)
