"""`vcodec encode` over many inputs: a folder or several files into an output folder, every
file on the same workers, one line for each that fails, one table at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from vcodec.cli.common import err, out
from vcodec.errors import EXIT_BAD_INPUT, InputError, VcxError
from vcodec.io import FRAME_SUFFIXES, RAW_FORMATS

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".ts", ".m4v", *RAW_FORMATS)


def batch_inputs(sources: list[Path]) -> list[Path] | None:
    """The files of a batch, in name order, or None for a single input (one file, ``-``, or a
    folder of PNG/JPG frames). A folder of videos stands for the videos in it."""
    if len(sources) == 1:
        folder = sources[0]
        if not folder.is_dir() or any(p.suffix.lower() in FRAME_SUFFIXES for p in folder.iterdir()):
            return None
        videos = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if not videos:
            raise InputError(f"{folder} holds no video and no PNG/JPG frames")
        return videos
    return [v for s in sources for v in (batch_inputs([s]) or [s] if s.is_dir() else [s])]


def run_batch(inputs: list[Path], output: Path, encode_one: Callable[[Path, Path], Any]) -> int:
    """Encode each input into ``output``/NAME.vcx; a failure is one red line and the others
    go on. Returns the exit code: 0, or the first failure's."""
    if output.exists() and not output.is_dir():
        raise InputError(f"-o {output}: several inputs go into a folder, and this is a file")
    output.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"{len(inputs)} inputs into {output}")
    for column in ("input", "frames", "bytes", "kbps", "seconds", "result"):
        table.add_column(column, justify="left" if column in ("input", "result") else "right")
    code = 0
    for src in inputs:
        start = time.perf_counter()
        try:
            result = encode_one(src, output / f"{src.stem}.vcx")
        except VcxError as exc:
            code = code or exc.exit_code
            err.print(f"[red]error:[/red] {escape(src.name)}: {escape(str(exc))}", soft_wrap=True)
            table.add_row(src.name, "", "", "", f"{time.perf_counter() - start:.1f}", "failed")
            continue
        except Exception as exc:  # a video the decoder cannot read, a bug: still one line
            code = code or EXIT_BAD_INPUT
            err.print(f"[red]error:[/red] {escape(src.name)}: {escape(str(exc))}", soft_wrap=True)
            table.add_row(src.name, "", "", "", f"{time.perf_counter() - start:.1f}", "failed")
            continue
        seconds = result.frames / result.fps
        kbps = 8 * (result.bytes - result.audio_bytes) / seconds / 1000
        table.add_row(
            src.name, str(result.frames), f"{result.bytes:,}", f"{kbps:.1f}",
            f"{result.seconds:.1f}", "ok",
        )  # fmt: skip
    out.print(table)
    return code
