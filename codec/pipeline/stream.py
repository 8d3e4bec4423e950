"""Whole-stream plumbing shared by the encoder, decoder and info: opening a .vcx, starting and
finishing a writer, copying a stream with its notes or without the models no GOP used."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from vcodec.bitstream.container import (
    MAX_NOTE_BYTES,
    MAX_NOTES,
    End,
    GopChunk,
    Samples,
    StreamHeader,
    VcxReader,
    VcxWriter,
    encode_header,
    read_header,
)
from vcodec.errors import InputError
from vcodec.files import is_stdio
from vcodec.pipeline.side_info import unpack_side_info
from vcodec.stages.masks import CANDIDATES_MODEL
from vcodec.stages.post import post_model


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


def finish_stream(writer: VcxWriter) -> int:
    if writer.gops == 0:
        raise InputError("the input has no frames to encode")
    writer.close()
    return writer.frames


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


def without_models(stream: BinaryIO, out: BinaryIO, unused: set[str]) -> None:
    """Copy a hybrid stream leaving out the ``unused`` models: the mask codec's (its SAMPLES
    chunks, all off), the post-processing network's (its strength symbol, all 0) and the
    frame-prediction network's (the step symbol stays: from format 7 every hybrid GOP has it)."""
    reader = VcxReader(stream)
    models = reader.header.models
    drop_post = post_model(models) is not None and post_model(models) in unused
    writer = VcxWriter(out, replace(reader.header, models={
        k: v for k, v in models.items() if k not in unused
    }))  # fmt: skip
    for chunk in reader:
        if isinstance(chunk, End) or (isinstance(chunk, Samples) and CANDIDATES_MODEL in unused):
            continue
        if isinstance(chunk, GopChunk) and drop_post:
            params = unpack_side_info(chunk.side_info, models, reader.version)
            chunk = replace(chunk, side_info=replace(params, post=None).pack())
        writer.write(chunk)
    writer.close()
