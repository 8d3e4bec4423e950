"""The bench's output folder: checked before any work, written whole at the end or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vcodec.errors import InputError, OutputError, OutputExistsError

OUTPUT_FILES = ("bench.json", "bench.csv", "rd.png", "pareto.png", "report.html")


def check_out_dir(out_dir: Path, *, force: bool) -> None:
    """Refuse ``out_dir`` before the bench starts: when it is not a folder, or when it holds
    an output of an earlier bench beside files the bench did not write (without ``force``).
    A folder that holds nothing but bench outputs is the bench's own: a new run replaces them,
    so the same command can run twice. Other files are never touched."""
    if not out_dir.exists():
        probe_out_dir(out_dir)
        return
    if not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is not a folder")
    entries = [p for p in out_dir.iterdir() if not _is_partial(p.name)]
    ours = [p for p in entries if p.name in OUTPUT_FILES]
    for path in ours:
        if path.is_dir() or path.is_symlink():
            raise OutputExistsError(f"{path} is not a file the bench wrote; move it away")
    others = [p for p in entries if p.name not in OUTPUT_FILES]
    if ours and others and not force:
        raise OutputExistsError(
            f"{out_dir} holds {ours[0].name} beside other files ({others[0].name}); pass "
            f"--force to replace the bench's files there ({', '.join(OUTPUT_FILES)}) or choose "
            "another --out"
        )
    probe_out_dir(out_dir)


PROBE_BYTES = 64 << 10  # written and removed before the bench starts: a full disk says so now


def probe_out_dir(out_dir: Path) -> None:
    """OutputError now, not after every point has run, when ``out_dir`` cannot be made or
    written (no rights, a read-only or full file system); it is left as it was."""
    made = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # the folders to make
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".probe.", suffix=".partial.tmp", dir=out_dir)
        try:
            os.write(fd, bytes(PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        raise OutputError(f"cannot write --out {out_dir}: {exc.strerror or exc}") from None
    finally:
        for folder in made:  # innermost first: only those this made, and only empty
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextmanager
def bench_outputs(out_dir: Path) -> Iterator[Callable[[str], Path]]:
    """Yield ``temp(name)``: a temporary path in ``out_dir`` (created if missing) for the
    output ``name``; when the block ends, every output written moves to its name, and on any
    error the temporaries go (and the folder, if this made it and it is empty)."""
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}

    def temp(name: str) -> Path:
        if name not in OUTPUT_FILES:
            raise ValueError(f"{name} is not a bench output")
        stem, dot, suffix = name.rpartition(".")
        temps[name] = out_dir / f".{stem}.{os.getpid()}.partial{dot}{suffix}"
        return temps[name]

    try:
        yield temp
        for name, path in temps.items():
            os.replace(path, out_dir / name)
    except BaseException:
        for path in temps.values():
            path.unlink(missing_ok=True)
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def _is_partial(name: str) -> bool:
    """A temporary of bench_outputs (left by a killed run)."""
    return name.startswith(".") and ".partial." in name
