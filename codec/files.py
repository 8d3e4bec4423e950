"""Safe outputs: claim a locked partial name beside the output, write there, publish at the end."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vcodec.errors import InputError, OutputError, OutputExistsError, VcxError

FRAME_FILE = re.compile(r"\d{6}\.png")  # what a PNG decode writes: all that --force removes
COPY_BYTES = 1 << 20  # standard input is copied in pieces of this size
CLAIM_TRIES = 8  # a partial name that keeps changing under us is given up after this many
# OS errors that say the output cannot be written (rights, space, file system), not a bug
OUTPUT_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EIO,
        errno.ENAMETOOLONG,
        errno.ENOTDIR,
        errno.EISDIR,
    }
)
NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)


STDIO = "-"  # as an input, standard input; as an output, standard output


def is_stdio(path: str | Path) -> bool:
    return str(path) == STDIO


def special_file(path: str | Path) -> int | None:
    """The file type (stat's S_IFCHR, S_IFIFO or S_IFBLK) of a device or FIFO at ``path``
    (or a link to one), else None: such a file is read or written in place, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    kind = stat.S_IFMT(mode)
    return kind if kind in (stat.S_IFCHR, stat.S_IFIFO, stat.S_IFBLK) else None


@contextmanager
def readable_input(src: str | Path) -> Iterator[Path]:
    """``src`` as a path that can be read more than once (a video's first frames, then all of
    it, then its audio): standard input (``-``) or a FIFO is first copied whole into a
    temporary file, removed at the end."""
    if not is_stdio(src) and special_file(src) != stat.S_IFIFO:
        yield Path(src)
        return
    with tempfile.TemporaryDirectory(prefix="vcodec-input-") as folder:
        copy = Path(folder) / "input"
        with open(copy, "wb") as out:
            if is_stdio(src):
                shutil.copyfileobj(sys.stdin.buffer, out, COPY_BYTES)
            else:
                with open(src, "rb") as pipe:
                    shutil.copyfileobj(pipe, out, COPY_BYTES)
        yield copy


def partial_path(dst: str | Path) -> Path:
    """Where a run writes ``dst`` until it is complete: ``.NAME.partial`` beside it."""
    path = Path(dst)
    return path.with_name(f".{path.name}.partial")


def check_output(dst: str | Path, *, force: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """The output path. OutputExistsError if it is one of ``inputs`` (the same file, by
    inode), if it exists without ``force``, or if it is a folder that holds anything but
    vcodec's PNG frames; InputError if its folder is missing."""
    path = Path(dst)
    for src in inputs:
        if _same_file(path, Path(src)):
            raise OutputExistsError(f"{path} is the input {src}; write the output elsewhere")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputExistsError(f"{path} exists; pass --force to overwrite it")
        if path.is_dir() and not path.is_symlink():
            with _os_errors(path):
                _check_frames_only(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


@contextmanager
def atomic_output(
    dst: str | Path,
    *,
    force: bool = False,
    directory: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Iterator[Path]:
    """Yield a temporary path beside ``dst`` (a file, or an empty folder when ``directory``),
    claimed for this run alone; on success it becomes ``dst``, on any error, KeyboardInterrupt
    or signal the CLI turns into one, it is removed and ``dst`` is left untouched.

    The temporary path is ``.NAME.partial``, locked while the run lasts: another run to the
    same output fails at once (OutputExistsError), and one left by a killed run is emptied by
    the next run that claims it. Without ``force`` the output's name is taken at the end only if
    it is still free (a hard link), so two runs never both succeed. OS errors on the way
    (rights, a read-only file system, a full disk) become OutputError.

    Standard output (``-``), a character device or a FIFO (``/dev/null``, a named pipe) is
    yielded as it is and written in place, with no partial file and no --force; a block
    device only with ``force``. None of them is ever replaced or removed."""
    kind = special_file(dst)
    if is_stdio(dst) or kind is not None:
        if directory:
            raise InputError(f"cannot write a folder of frames to {dst}")
        if kind == stat.S_IFBLK and not force:
            raise OutputExistsError(f"{dst} is a block device; pass --force to write onto it")
        with _os_errors(Path(dst)):
            yield Path(dst)
        return
    path = check_output(dst, force=force, inputs=inputs)
    with _os_errors(path):
        tmp, lock = _claim(path, directory)
    try:
        with _os_errors(path):
            yield tmp
            _publish(tmp, path, force=force, directory=directory)
    except BaseException:
        _discard(tmp)
        raise
    finally:
        os.close(lock)


@contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    """OSErrors about the output (naming no file, or the output, its partial path or a file in
    it) become one-line OutputErrors."""
    try:
        yield
    except VcxError:
        raise
    except OSError as exc:
        named = getattr(exc, "filename", None)
        if exc.errno not in OUTPUT_ERRNOS or not _is_output(named, path):
            raise
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _is_output(named: object, path: Path) -> bool:
    if named is None:
        return True
    if not isinstance(named, (str, bytes, os.PathLike)):
        return False
    names = {path.name, partial_path(path).name}
    file = Path(os.fsdecode(named))
    return any(p.name in names for p in (file, *file.parents))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _check_frames_only(folder: Path) -> None:
    """OutputExistsError unless ``folder`` holds only files named like vcodec's PNG frames."""
    others = sorted(
        e.name
        for e in os.scandir(folder)
        if not (FRAME_FILE.fullmatch(e.name) and e.is_file(follow_symlinks=False))
    )
    if others:
        raise OutputExistsError(
            f"{folder} is a folder holding {len(others)} entries vcodec did not write (such "
            f"as {others[0]!r}); --force replaces only files and folders of vcodec's PNG "
            "frames: remove it yourself or choose another output"
        )


def _remove_frames(folder: Path) -> None:
    """Remove a folder of vcodec's PNG frames (checked: nothing else is deleted)."""
    _check_frames_only(folder)
    for entry in os.scandir(folder):
        os.unlink(entry.path)
    os.rmdir(folder)


def _claim(path: Path, directory: bool) -> tuple[Path, int]:
    """Create (or take over, when its run was killed) the locked partial path of ``path``;
    returns it and the descriptor that holds the lock."""
    tmp = partial_path(path)
    for _ in range(CLAIM_TRIES):
        fd = _open_partial(tmp, directory)
        if fd is None:  # removed between its creation and our open: try again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputExistsError(
                f"another vcodec run is writing {path} (its {tmp.name} is in use); wait for it "
                "to end or choose another output"
            ) from None
        if _is_current(fd, tmp):
            if stat.S_ISDIR(os.fstat(fd).st_mode) == directory:
                _empty(tmp, fd, directory)  # left by a killed run: what it wrote goes
                return tmp, fd
            _remove_partial(tmp)  # a killed run's partial of the other kind
        os.close(fd)
    raise OutputExistsError(f"cannot claim {tmp}: other runs keep replacing it")


def _open_partial(tmp: Path, directory: bool) -> int | None:
    """A descriptor of the partial path, created when absent; None when it vanished."""
    if directory:
        with contextlib.suppress(FileExistsError):
            os.mkdir(tmp)
    flags = os.O_RDONLY if directory else os.O_RDWR | os.O_CREAT
    try:
        try:
            return os.open(tmp, flags | os.O_NOFOLLOW, 0o666)
        except IsADirectoryError:
            return os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise OutputExistsError(
            f"{tmp} is a link, not vcodec's partial output; remove it"
        ) from None


def _is_current(fd: int, tmp: Path) -> bool:
    """Whether the locked descriptor is still the file at ``tmp`` (not one removed meanwhile)."""
    try:
        now = os.stat(tmp, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _empty(tmp: Path, fd: int, directory: bool) -> None:
    if not directory:
        os.ftruncate(fd, 0)
        return
    try:
        _check_frames_only(tmp)
    except OutputExistsError:
        raise OutputExistsError(
            f"{tmp} holds files vcodec did not write, so it is not a partial output of an "
            "earlier run; remove it or choose another output"
        ) from None
    for entry in os.scandir(tmp):
        os.unlink(entry.path)


def _remove_partial(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        _remove_frames(tmp)
    else:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, *, force: bool, directory: bool) -> None:
    """Give ``tmp`` the output's name: replacing what is there with ``force`` (a file, or a
    folder of vcodec's frames, checked again now), else only if the name is still free."""
    taken = path.exists() or path.is_symlink()
    if force and taken:
        if path.is_dir() and not path.is_symlink():
            _remove_frames(path)
        elif directory:
            path.unlink()
        os.replace(tmp, path)
        return
    if not directory:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise _appeared(path) from None
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
        else:
            tmp.unlink()
            return
    if taken or path.exists() or path.is_symlink():  # a file system without hard links
        raise _appeared(path)
    os.rename(tmp, path)


def _appeared(path: Path) -> OutputExistsError:
    return OutputExistsError(
        f"{path} was created by another program while this run wrote it; it is left as it "
        "is (pass --force to replace it)"
    )


def _discard(tmp: Path) -> None:
    """Remove this run's partial output (its own hidden file or folder of frames)."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink()
