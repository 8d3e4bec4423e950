"""What every command shares: the consoles, common options, the error reporter, progress bars."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from vcodec.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, VcxError

out = Console(width=None if sys.stdout.isatty() else 160)  # tables stay whole in pipes and logs
err = Console(stderr=True)

Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output if it exists.")]
Device = Annotated[str, typer.Option(help="Where networks and resampling run: auto, cpu or cuda.")]


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn every error into one red line on stderr and the documented exit code."""
    import av

    try:
        yield
    except VcxError as exc:
        _fail(str(exc), exc.exit_code)
    except av.error.FFmpegError as exc:
        _fail(f"video error: {exc}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
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
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def frame_progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar counting frames; yields the callback the library calls."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
