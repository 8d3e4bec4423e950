"""Typed errors for everything a user can get wrong: damaged streams, bad inputs, missing models.

Every error vcodec raises on purpose is a ``VcxError``; the CLI turns it into one red line on
stderr and exits with the error's ``exit_code``. Like PyAV, each error also subclasses the
matching built-in type, so ``except EOFError`` or ``except ValueError`` keeps working.
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_BAD_BITSTREAM = 4
EXIT_MISSING_MODEL = 5
EXIT_OUTPUT_EXISTS = 6
EXIT_INTERRUPTED = 130  # SIGINT; a run ended by another signal exits 128 + its number


class VcxError(Exception):
    """Base of every error vcodec reports to a user."""

    exit_code: int = EXIT_BAD_BITSTREAM


# --- the .vcx bitstream -------------------------------------------------------------------


class BadMagicError(VcxError, ValueError):
    """The file does not start with the .vcx magic bytes: it is not a .vcx stream."""


class UnsupportedVersionError(VcxError, ValueError):
    """The stream (or one of its blocks) has a version this decoder does not know."""


class TruncatedError(VcxError, EOFError):
    """The stream ends before a field, chunk or the END chunk it needs."""


class ChecksumError(VcxError, ValueError):
    """A chunk or the metadata block fails its CRC32: the bytes were damaged."""


class MalformedError(VcxError, ValueError):
    """A field holds a value that cannot be right (out of range, inconsistent, unknown type)."""


class LimitError(VcxError, ValueError):
    """The stream is well formed but larger than this decoder's limits (``StreamLimits``)."""


class UnknownModelError(VcxError, LookupError):
    """The stream names a model (or weight hash) this installation does not have."""

    exit_code = EXIT_MISSING_MODEL


# --- inputs and outputs -------------------------------------------------------------------


class InputError(VcxError, ValueError):
    """An input file is missing, unreadable, not a video, or has no usable frames."""

    exit_code = EXIT_BAD_INPUT


class InputNotVisibleError(InputError):
    """A worker cannot read the input at the driver's path (no shared file system there, or
    another file by that name): the driver sends it the window's packets instead."""


class OutputError(VcxError, OSError):
    """The output cannot be written: no permission, a read-only file system, a full disk."""

    exit_code = EXIT_BAD_INPUT


class OutputExistsError(VcxError, FileExistsError):
    """The output's name is taken: it exists and ``force`` was not given, it is the input, it
    is a folder of other files, or another vcodec run is writing it."""

    exit_code = EXIT_OUTPUT_EXISTS


class WorkerError(VcxError, RuntimeError):
    """A worker process or cluster node coding a segment was lost (and, on a cluster, its
    retries too): the run stops cleanly, nothing is written."""

    exit_code = EXIT_INTERNAL


class VcxWarning(UserWarning):
    """Something the user should know that did not stop the run: a truncated or
    variable-frame-rate input, a converted pixel format, audio that was not written."""
