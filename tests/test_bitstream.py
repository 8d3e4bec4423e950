"""The .vcx container: golden bytes, round trips, and every kind of damage as a typed error."""

from __future__ import annotations

import io
import zlib
from dataclasses import replace

import pytest

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
    VcxReader,
    VcxWriter,
    Wiener,
    encode_chunk,
    encode_header,
)
from vcodec.bitstream.fields import ByteReader, ByteWriter
from vcodec.errors import (
    BadMagicError,
    ChecksumError,
    MalformedError,
    TruncatedError,
    UnsupportedVersionError,
    VcxError,
)

HEADER = StreamHeader(width=64, height=48, fps_num=25, fps_den=1)
GOLDEN_HEADER = "564358091401403019010002020200100004783236352000004de19fe6"
# ... 01 model: 07 "post-v1", 04 its id 9ceb5558; 00 the empty encoder text; CRC32
GOLDEN_HEADER_MODEL = (
    "56435809210140301901000202020010000478323635200107706f73742d7631049ceb555800867658ab"
)
GOLDEN_CHUNKS = [
    (Segment("x265", 32, 24, b""), "010804783236352018004c0c2df6"),
    (GopChunk(0, 0, 16, b"\x80"), "0204000010801937f0ae"),
    (BaseData(b"abc"), "0303616263f3ba5259"),
    (Samples(3, b"\x12\x34"), "0503031234bced7147"),
    (Wiener(3, b"\x9a"), "0602039a377d5c3c"),
    (Roi(2, 1, 3, 4, b"\x56"), "860502010304569c2a3900"),
    (AudioPiece(b"xyz"), "040378797a469dd835"),
    (End(16, 1), "7f0210017f99592c"),
    # 08 CUT, 18 its length: first GOP 2, first frame 32, 16 frames, "av1", qp 30, 1 thread,
    # 1 model "post-v1", target "qp 30"; CRC32
    (
        Cut(2, 32, 16, "av1", 30, 1, ("post-v1",), "qp 30"),
        "0818022010036176311e010107706f73742d763105717020333043bb79ea",
    ),
]


def make_stream(n_gops: int = 2, audio: bytes = b"") -> bytes:
    buf = io.BytesIO()
    writer = VcxWriter(buf, HEADER)
    if audio:
        writer.write_audio(audio)
    writer.write(Segment("x265", 32, 24))
    for i in range(n_gops):
        writer.write(GopChunk(i, 16 * i, 16, b"\x80"))
        writer.write(BaseData(bytes([i]) * 10 + b"xyz"))
    writer.close()
    return buf.getvalue()


def read_all(data: bytes) -> list:
    return list(VcxReader(io.BytesIO(data)))


def test_header_golden_bytes() -> None:
    assert encode_header(HEADER).hex() == GOLDEN_HEADER
    with_model = replace(HEADER, models={"post-v1": "9ceb5558"})
    assert encode_header(with_model).hex() == GOLDEN_HEADER_MODEL


@pytest.mark.parametrize(
    ("version", "id_bytes", "ok"), [(6, 4, True), (5, 32, True), (6, 32, False), (5, 4, False)]
)
def test_model_ids_are_four_bytes_from_version_6(version, id_bytes, ok) -> None:
    """Version 6 names a model by the first 4 bytes of its weights' sha256; 1-5 by all 32."""
    header = replace(HEADER, models={"post-v1": "9c" * id_bytes})
    short = _metadata_body(replace(HEADER, models={"post-v1": "9c" * 4}))
    meta = short.replace(b"\x04" + b"\x9c" * 4, bytes([id_bytes]) + b"\x9c" * id_bytes)
    head = b"VCX" + bytes([version]) + ByteWriter().varint(len(meta)).getvalue() + meta
    data = head + zlib.crc32(head).to_bytes(4, "little") + encode_chunk(End(0, 0))
    if ok:
        assert VcxReader(io.BytesIO(data)).header == header
    else:
        with pytest.raises(MalformedError, match=f"model id is not {32 + 4 - id_bytes} bytes"):
            VcxReader(io.BytesIO(data))
    with pytest.raises(ValueError, match="4 bytes"):  # this version writes short ids only
        encode_header(replace(HEADER, models={"post-v1": "9c" * 32}))


@pytest.mark.parametrize(("chunk", "golden"), GOLDEN_CHUNKS)
def test_chunk_golden_bytes(chunk, golden) -> None:
    assert encode_chunk(chunk).hex() == golden


def test_round_trip() -> None:
    data = make_stream(3, audio=b"A" * 10)
    reader = VcxReader(io.BytesIO(data))
    assert reader.header == HEADER
    chunks = list(reader)
    assert chunks[0] == AudioPiece(b"A" * 10)
    assert chunks[1] == Segment("x265", 32, 24)
    assert [c.index for c in chunks if isinstance(c, GopChunk)] == [0, 1, 2]
    assert chunks[-1] == End(48, 3)


def test_audio_split_into_pieces() -> None:
    from vcodec.bitstream.container import AUDIO_PIECE_BYTES

    blob = bytes(range(256)) * (AUDIO_PIECE_BYTES // 256 * 2 + 3)
    pieces = [c.data for c in read_all(make_stream(1, audio=blob)) if isinstance(c, AudioPiece)]
    assert len(pieces) == 3 and b"".join(pieces) == blob


def test_truncated_at_every_offset() -> None:
    data = make_stream(2)
    for cut in range(len(data)):
        with pytest.raises((TruncatedError, BadMagicError)) as info:
            read_all(data[:cut])
        assert cut < 3 or isinstance(info.value, TruncatedError)


def test_every_flipped_bit_is_caught() -> None:
    data = make_stream(2)
    for pos in range(len(data)):
        for bit in (0, 3, 7):
            damaged = bytearray(data)
            damaged[pos] ^= 1 << bit
            with pytest.raises(VcxError):
                read_all(bytes(damaged))


def test_checksum_error_names_the_chunk() -> None:
    data = bytearray(make_stream(2))
    data[-15] ^= 0xFF  # inside the last BASE chunk
    with pytest.raises(ChecksumError, match=r"chunk #4 \(BASE\) at byte \d+"):
        read_all(bytes(data))


def test_wrong_magic_and_empty_file() -> None:
    with pytest.raises(BadMagicError):
        read_all(b"RIFF" + make_stream()[4:])
    with pytest.raises(BadMagicError):
        read_all(b"")


def test_future_format_version() -> None:
    data = bytearray(make_stream())
    data[3] = 10
    with pytest.raises(UnsupportedVersionError, match="format version 10"):
        read_all(bytes(data))


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_older_versions_are_still_read(version: int) -> None:
    """Versions 2 to 5 only added chunk contents (SAMPLES; the post strength and the temporal
    step in the side info of streams that name post-v1 or predict-v1; WIENER chunks) and 6
    shortened the model ids (this stream names no model): an older stream reads as it always
    did."""
    data = bytearray(make_stream())
    data[3] = version
    head = len(encode_header(HEADER)) - 4
    data[head : head + 4] = zlib.crc32(bytes(data[:head])).to_bytes(4, "little")
    assert read_all(bytes(data)) == read_all(make_stream())
    assert VcxReader(io.BytesIO(bytes(data))).version == version  # what the decoder reads by


def test_samples_chunks_follow_their_gop_in_order() -> None:
    header = encode_header(HEADER)
    gop0, gop1 = encode_chunk(GopChunk(0, 0, 16, b"")), encode_chunk(GopChunk(1, 16, 16, b""))
    end = encode_chunk(End(32, 2))
    ok = header + gop0 + gop1 + encode_chunk(Samples(0, b"a")) + encode_chunk(Samples(1, b"b"))
    assert [c for c in read_all(ok + end) if isinstance(c, Samples)] == [
        Samples(0, b"a"),
        Samples(1, b"b"),
    ]
    for bad in (
        header + gop0 + encode_chunk(Samples(1, b"")) + gop1,  # skips GOP 0
        header + encode_chunk(Samples(0, b"")) + gop0 + gop1,  # before its GOP
        header + gop0 + encode_chunk(Samples(0, b"")) + encode_chunk(Samples(0, b"")) + gop1,
    ):
        with pytest.raises(MalformedError, match="SAMPLES of GOP"):
            read_all(bad + end)


def test_roi_chunks_follow_their_gop_in_order() -> None:
    header = encode_header(HEADER)
    gop0, gop1 = encode_chunk(GopChunk(0, 0, 16, b"")), encode_chunk(GopChunk(1, 16, 16, b""))
    roi0, roi1 = encode_chunk(Roi(0, 1, 3, 4, b"a")), encode_chunk(Roi(1, 1, 3, 4, b"b"))
    end = encode_chunk(End(32, 2))
    assert [
        c.gop for c in read_all(header + gop0 + roi0 + gop1 + roi1 + end) if isinstance(c, Roi)
    ] == [0, 1]
    for bad in (
        header + roi0 + gop0 + gop1,
        header + gop0 + gop1 + roi1,
        header + gop0 + roi0 + roi0 + gop1,
    ):
        with pytest.raises(MalformedError, match="ROI of GOP"):
            read_all(bad + end)


def test_wiener_chunks_come_right_before_their_gop() -> None:
    header = encode_header(HEADER)
    gop0, gop1 = encode_chunk(GopChunk(0, 0, 16, b"")), encode_chunk(GopChunk(1, 16, 16, b""))
    w0, w1 = encode_chunk(Wiener(0, b"a")), encode_chunk(Wiener(1, b"b"))
    end = encode_chunk(End(32, 2))
    chunks = read_all(header + w0 + gop0 + gop1 + end)
    assert [c for c in chunks if isinstance(c, Wiener)] == [Wiener(0, b"a")]
    assert [c.gop for c in read_all(header + gop0 + w1 + gop1 + end) if isinstance(c, Wiener)] == [
        1
    ]
    for bad in (
        header + gop0 + w0 + gop1,  # after its GOP
        header + w1 + gop0 + gop1,  # a GOP early
        header + w0 + w0 + gop0 + gop1,  # twice
    ):
        with pytest.raises(MalformedError, match="WIENER of GOP"):
            read_all(bad + end)
    with pytest.raises(MalformedError, match="ends before GOP 2"):
        read_all(header + gop0 + gop1 + encode_chunk(Wiener(2, b"c")) + end)


def _header_with(meta: bytes) -> bytes:
    head = b"VCX\x02" + ByteWriter().varint(len(meta)).getvalue() + meta
    return head + zlib.crc32(head).to_bytes(4, "little")


def _metadata_body(header: StreamHeader = HEADER) -> bytes:
    """The metadata block of a header, cut out of encode_header's bytes."""
    data = encode_header(header)
    reader = ByteReader(data[4:-4], "t")
    return reader.blob()


def test_metadata_round_trip_with_models_and_colour() -> None:
    header = StreamHeader(
        width=1919,
        height=1081,
        fps_num=30000,
        fps_den=1001,
        color_range=1,
        colorspace=1,
        color_primaries=1,
        color_trc=1,
        mode="pure",
        base_codec="av1",
        qp=40,
        models={"recon": "ab" * 4, "post": "0f" * 4},
        encoder="vcodec 9.9",
    )
    assert VcxReader(io.BytesIO(encode_header(header) + encode_chunk(End(0, 0)))).header == header


def test_future_metadata_version_and_bad_metadata() -> None:
    body = _metadata_body()
    assert body[0] == 1  # the metadata version leads the block
    with pytest.raises(UnsupportedVersionError, match="metadata version 2"):
        VcxReader(io.BytesIO(_header_with(b"\x02" + body[1:])))
    with pytest.raises(TruncatedError):
        VcxReader(io.BytesIO(_header_with(body[:7])))
    mode_at = 11  # after: version, 64, 48, 25, 1 (one-byte varints), 4 colour bytes, pix_fmt, gop
    bad_mode = body[:mode_at] + b"\x07" + body[mode_at + 1 :]
    with pytest.raises(MalformedError, match="mode"):
        VcxReader(io.BytesIO(_header_with(bad_mode)))
    with pytest.raises(MalformedError, match="frame size"):
        VcxReader(io.BytesIO(_header_with(b"\x01\x00" + body[2:])))
    with pytest.raises(MalformedError, match="metadata block of"):
        VcxReader(io.BytesIO(b"VCX\x02" + ByteWriter().varint(1 << 20).getvalue()))


def test_trailing_metadata_bytes_are_ignored() -> None:
    """A later revision of metadata version 1 may append fields after the task (the optional
    fields so far: the notes, then the task); this reader skips them."""
    notes = ByteWriter().varint(1).text("input note").u8(1).getvalue()
    reader = VcxReader(io.BytesIO(_header_with(_metadata_body() + notes + b"later")))
    assert reader.header == replace(HEADER, notes=("input note",), task="detect")


def _raw_chunk(ctype: int, payload: bytes) -> bytes:
    head = ByteWriter().u8(ctype).varint(len(payload)).getvalue()
    return head + payload + zlib.crc32(head + payload).to_bytes(4, "little")


def test_unknown_required_chunk_is_refused_ancillary_skipped() -> None:
    data = make_stream(1)
    header_len = len(encode_header(HEADER))
    body = data[header_len:]
    with pytest.raises(UnsupportedVersionError, match="0x33"):
        read_all(data[:header_len] + _raw_chunk(0x33, b"??") + body)
    chunks = read_all(data[:header_len] + _raw_chunk(0xC1, b"future") + body)
    assert chunks == read_all(data)


def test_structural_errors() -> None:
    data = make_stream(1)
    with pytest.raises(MalformedError, match="after the END"):
        read_all(data + b"\x00")
    header = encode_header(HEADER)
    out_of_order = header + encode_chunk(GopChunk(1, 16, 16, b"")) + encode_chunk(End(16, 1))
    with pytest.raises(MalformedError, match="out of order"):
        read_all(out_of_order)
    wrong_totals = header + encode_chunk(GopChunk(0, 0, 16, b"")) + encode_chunk(End(17, 1))
    with pytest.raises(MalformedError, match="END chunk says"):
        read_all(wrong_totals)
    too_long = header + encode_chunk(GopChunk(0, 0, 17, b"")) + encode_chunk(End(17, 1))
    with pytest.raises(MalformedError, match="GOP of 17"):
        read_all(too_long)
    huge = header + ByteWriter().u8(0x03).varint(1 << 30).getvalue()
    with pytest.raises(MalformedError, match="implausible"):
        read_all(huge)
    trailing = header + _raw_chunk(0x7F, b"\x00\x00\x00")
    with pytest.raises(MalformedError, match="unexpected bytes"):
        read_all(trailing)


def test_fields_varint_and_bounds() -> None:
    for value in (0, 1, 127, 128, 300, 2**32, 2**63):
        assert ByteReader(ByteWriter().varint(value).getvalue(), "t").varint() == value
    with pytest.raises(TruncatedError):
        ByteReader(b"\x80", "t").varint()
    with pytest.raises(MalformedError):
        ByteReader(b"\xff" * 11, "t").varint()
    with pytest.raises(TruncatedError, match="needs 5 bytes"):
        ByteReader(b"\x05ab", "t").blob()
    with pytest.raises(MalformedError):
        ByteReader(b"\x02\xff\xfe", "t").text()


# ... 00 the empty encoder text, then the notes: 01 of them, 04 "grey"; CRC32
GOLDEN_HEADER_NOTES = "564358091a014030190100020202001000047832363520000001046772657948d02cdf"


def test_notes_follow_the_encoder_field() -> None:
    header = replace(HEADER, notes=("grey",))
    assert encode_header(header).hex() == GOLDEN_HEADER_NOTES
    assert VcxReader(io.BytesIO(encode_header(header))).header == header
    with pytest.raises(MalformedError, match="note count"):
        encode_header(replace(HEADER, notes=("x",) * 17))


# ... 00 the empty encoder text, 00 notes, 01 the task (detect); CRC32
GOLDEN_HEADER_TASK = "564358091601403019010002020200100004783236352000000001b9f49249"


def test_task_follows_the_notes() -> None:
    """The task is the byte after the notes, which are written (a count of 0) to reach it; a
    stream without one ends as before, and an unknown task is damage."""
    header = replace(HEADER, task="detect")
    assert encode_header(header).hex() == GOLDEN_HEADER_TASK
    assert VcxReader(io.BytesIO(encode_header(header))).header == header
    both = replace(HEADER, notes=("grey",), task="track")
    assert VcxReader(io.BytesIO(encode_header(both))).header == both
    assert encode_header(HEADER) == encode_header(replace(HEADER, task="none"))
    unknown = ByteWriter().varint(0).u8(9).getvalue()
    with pytest.raises(MalformedError, match="unknown task 9"):
        VcxReader(io.BytesIO(_header_with(_metadata_body() + unknown)))


def test_segments_name_the_header_codec_and_fit_its_frames() -> None:
    header = encode_header(HEADER)
    end = encode_chunk(End(0, 0))
    for segment, message in (
        (Segment("x264", 32, 24), "not its segment's 'x265'"),
        (Segment("*265", 32, 24), "not its segment's"),
        (Segment("x265", 65, 24), "does not fit"),
        (Segment("x265", 0, 24), "does not fit"),
    ):
        with pytest.raises(MalformedError, match=message):
            read_all(header + encode_chunk(segment) + end)
    assert read_all(header + encode_chunk(Segment("x265", 64, 64)) + end)[0].width == 64
    with pytest.raises(MalformedError, match="base codec"):
        encode_header(replace(HEADER, base_codec="vp9"))
