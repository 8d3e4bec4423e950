"""What every command shares: the consoles, common options, the error reporter, progress bars."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.core import TyperGroup

from vcodec.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_USAGE, VcxError, VcxWarning

try:  # typer vendors click from 0.2x on; before, it used click itself
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError

out = Console(width=None if sys.stdout.isatty() else 160)  # tables stay whole in pipes and logs
err = Console(stderr=True)
HELP_WIDTH = 120  # columns of --help where no terminal says its width (a pipe, a log)


def setup_help() -> None:
    """--help as a newcomer reads it: no ``<bool>`` placeholder beside an on/off flag, and a
    readable width in a pipe (typer would fold it into 80 columns)."""
    from typer import rich_utils
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type
    if rich_utils.MAX_WIDTH is None and not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        rich_utils.MAX_WIDTH = HELP_WIDTH


Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output if it exists.")]
Device = Annotated[str, typer.Option(help="Where networks and resampling run: auto, cpu or cuda.")]
MaxPixels = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Refuse, before reading further, a stream whose frames have more pixels than this "
        "(default 8192x4320, 8K).",
    ),
]


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn every error into one red line on stderr and the documented exit code, and every
    VcxWarning into one yellow line."""
    import av

    try:
        with warnings.catch_warnings():  # restores the filters and showwarning on the way out
            warnings.simplefilter("always", VcxWarning)
            warnings.showwarning = _warning_shower(warnings.showwarning)
            yield
    except VcxError as exc:
        _fail(str(exc), exc.exit_code)
    except av.error.FFmpegError as exc:
        _fail(f"video error: {exc}", EXIT_BAD_INPUT)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (Signalled)
        signum = getattr(exc, "signum", signal.SIGINT)
        name = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        _fail(f"interrupted{name}", 128 + signum)
    except BrokenPipeError:  # `vcodec info --json | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # an unexpected failure: still one line, the trace on request
        if os.environ.get("VCODEC_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (VCODEC_DEBUG=1 shows the trace)",
            EXIT_INTERNAL,
        )


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _warning_shower(default: Callable[..., None]) -> Callable[..., None]:
    """warnings.showwarning that prints a VcxWarning as one line, others as before."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, VcxWarning):
            err.print(
                f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True
            )
        else:
            default(message, category, *args, **kwargs)

    return show


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C's KeyboardInterrupt, so that a run stops the same
    way: partial outputs removed, one line, exit 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP raise Signalled (the console script calls this)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_signalled)


def _raise_signalled(signum: int, frame: object) -> None:
    for other in (signal.SIGINT, *STOP_SIGNALS):  # the clean-up is not cut short by another
        signal.signal(other, signal.SIG_IGN)
    raise Signalled(signum)


class OneLineErrors(TyperGroup):
    """The app's group: usage errors (a bad option value, a missing option) are one red line
    and exit 2, like every other error, instead of click's framed box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `vcodec`: help is printed
                sys.exit(exc.exit_code)
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _usage_line(exc.format_message() + where, exc.exit_code)
        except ClickException as exc:
            _usage_line(exc.format_message(), exc.exit_code)
        except typer.Abort:
            _usage_line("aborted", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _usage_line(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code or EXIT_USAGE)


class FpsColumn(ProgressColumn):
    """Frames a second, over the bar's recent updates."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} fps" if task.speed else "", style="progress.data.speed")


@contextmanager
def frame_progress(
    label: str, total: int | None, unit: str | None = None
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar counting frames (fps, time left); yields the callback the library
    calls. With ``unit`` (``segments``), each call is one of them done, counted in the label."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        FpsColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)
        calls = 0

        def advance(frames: int) -> None:
            nonlocal calls
            calls += 1
            shown = f"{label}, {calls} {unit} done" if unit else label
            bar.update(task, advance=frames, description=shown)

        yield advance
