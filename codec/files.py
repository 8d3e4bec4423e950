"""Safe outputs: write to a temporary name beside the target, rename at the end, never clobber."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vcodec.errors import InputError, OutputExistsError


def check_output(dst: str | Path, *, force: bool) -> Path:
    """The output path, refused if it exists (without ``force``) or its folder is missing."""
    path = Path(dst)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


DEFAULT_MODE = 0o666  # what open() would give a new file, before the umask


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(
    dst: str | Path, *, force: bool = False, directory: bool = False
) -> Iterator[Path]:
    """Yield a temporary path (a file, or a fresh folder when ``directory``) beside ``dst``;
    on success it replaces ``dst``, on any error it is removed and ``dst`` is left untouched."""
    path = check_output(dst, force=force)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    tmp.chmod(DEFAULT_MODE & ~_umask() | (0o111 if directory else 0))  # mkstemp makes it 0600
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif directory and path.exists():
            path.unlink()
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
