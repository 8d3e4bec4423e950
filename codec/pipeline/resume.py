"""Resume: each coded window kept beside the partial output, with a manifest (options, and
each window's digest, bytes' sha256 and what reading it found), so a killed encode continues
where it was."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vcodec import __version__
from vcodec.bitstream.container import FORMAT_VERSION
from vcodec.errors import OutputError, VcxWarning
from vcodec.files import partial_path
from vcodec.notes import ReadLog

MANIFEST = "manifest.json"


def store_path(dst: str | Path) -> Path:
    """The folder of an encode's kept windows: ``.NAME.windows`` beside its output."""
    path = Path(dst)
    return path.with_name(f".{path.name}.windows")


def options_key(config: Any) -> dict[str, Any]:
    """What must match for a kept window to be reused: every option, the format, vcodec."""
    return {"options": asdict(config), "format": FORMAT_VERSION, "vcodec": __version__}


class ResumeStore:
    """The kept windows of one encode (``open`` finds or starts them; ``kept`` and ``keep``
    read and add one; ``finish`` removes them once the output is whole)."""

    def __init__(
        self, folder: Path | None, key: dict[str, Any], entries: dict[str, Any], output: Path
    ) -> None:
        self.folder, self.key, self.entries, self.output = folder, key, entries, output
        self.reused = 0

    @classmethod
    def open(cls, dst: str | Path, config: Any, *, resume: bool, keep: bool = True) -> ResumeStore:
        """The store for ``dst``. Kept windows of the same options are reused with
        ``resume``; without it, or when the options changed, they are dropped, and a
        VcxWarning says so in one line. ``keep``: False for outputs with no folder of their
        own (a device, a pipe): nothing is kept."""
        key = options_key(config)
        folder = store_path(dst) if keep else None
        if folder is None:
            return cls(None, key, {}, Path(dst))
        manifest = _read_manifest(folder)
        entries: dict[str, Any] = {}
        if manifest is not None and manifest.get("key") != key:
            _warn(f"{len(manifest.get('windows', {}))} windows kept by an earlier encode of "
                  f"{Path(dst).name} were coded with other options or another vcodec: coding "
                  "again")  # fmt: skip
        elif manifest is not None and not resume:
            _warn(
                f"{len(manifest.get('windows', {}))} windows of an interrupted encode of "
                f"{Path(dst).name} are kept in {folder}; coding again (--resume reuses them)"
            )
        elif manifest is not None:
            entries = manifest.get("windows", {})
        if not entries and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        store = cls(folder, key, entries, Path(dst))
        with _output_errors(Path(dst)):
            folder.mkdir(exist_ok=True)
            store._write_manifest()
        return store

    def kept(self, job: Any) -> tuple[bytes, ReadLog | None] | None:
        """The kept bytes of window ``job`` if its frames are the same, else None; with what
        reading it found (its notes' share)."""
        entry = self.entries.get(str(job.index))
        if self.folder is None or entry is None or entry["frames"] != job.digest:
            return None
        try:
            data = (self.folder / f"{job.index:06d}.vcx").read_bytes()
            log = None if entry.get("log") is None else ReadLog.from_json(entry["log"])
        except (OSError, TypeError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != entry["bytes"]:
            return None
        self.reused += 1
        return data, log

    def keep(self, job: Any, data: bytes, log: ReadLog | None = None) -> None:
        """Keep window ``job``'s bytes (written whole, then named, then in the manifest), and
        what reading it found."""
        if self.folder is None:
            return
        name = self.folder / f"{job.index:06d}.vcx"
        partial = partial_path(name)
        with _output_errors(self.output):
            partial.write_bytes(data)
            os.replace(partial, name)
            digest = hashlib.sha256(data).hexdigest()
            self.entries[str(job.index)] = {
                "frames": job.digest, "bytes": digest, "log": log and log.to_json()
            }  # fmt: skip
            self._write_manifest()

    def abandon(self) -> None:
        """The encode failed: a store that kept no window goes (one that did stays)."""
        if self.folder is not None and not self.entries:
            shutil.rmtree(self.folder, ignore_errors=True)

    def finish(self) -> None:
        """The output is whole: the kept windows go."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _write_manifest(self) -> None:
        partial = partial_path(self.folder / MANIFEST)
        partial.write_text(json.dumps({"key": self.key, "windows": self.entries}, indent=1))
        os.replace(partial, self.folder / MANIFEST)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((folder / MANIFEST).read_text())
        if isinstance(manifest, dict):
            return manifest
    return None


@contextlib.contextmanager
def _output_errors(output: Path) -> Iterator[None]:
    """An OS error writing the kept windows of ``output`` (rights, a full disk) is an
    OutputError about the output."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None


def _warn(message: str) -> None:
    warnings.warn(message, VcxWarning, stacklevel=3)
