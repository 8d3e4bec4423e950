"""What every training command shares: the cached example set and hash-printed weight files."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import torch

from vcodec.errors import InputError
from vcodec.files import atomic_output
from vcodec.train.data import DataConfig, Examples, build_examples


def examples_for(
    data: str | Path | None,
    cache: str | Path | None,
    progress: Callable[[str], None] = print,
    kind: type = Examples,
    build: Callable = lambda data, progress: build_examples(data, DataConfig(), progress),
):
    """Examples (of ``kind``, made by ``build(data, progress)``) from ``cache`` if it exists,
    else built from the clips in ``data`` and cached."""
    if cache is not None and Path(cache).exists():
        return kind.load(cache)
    if data is None:
        raise InputError("give --data DIR (a folder of clips), or an existing --cache file")
    examples = build(data, progress)
    if cache is not None:
        examples.save(cache)
    return examples


def save_weights(obj: torch.nn.Module | torch.Tensor, path: str | Path, *, force: bool) -> str:
    """Write a module's state (or a tensor) to ``path``; returns the file's sha256."""
    state = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    if isinstance(state, dict):
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    with atomic_output(path, force=force) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: str | Path, factory: Callable[[], torch.nn.Module] | None = None):
    """A module (from ``factory``) or tensor saved by ``save_weights``; no hash check."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such weights file") from None
    except Exception as exc:
        raise InputError(f"{path}: not a weights file ({exc})") from None
    if factory is None:
        return state
    module = factory()
    module.load_state_dict(state)
    return module.eval()


class Checkpoint:
    """A training run's state (network, optimiser, schedule, random generators, step) saved to
    ``path`` every ``every`` steps, so that a killed run resumes where it stopped; ``key`` (the
    run's settings) must match to resume. The file goes once the run ends."""

    def __init__(self, path: str | Path | None, key: dict, every: int = 2000):
        self.path = None if path is None else Path(path)
        self.key, self.every = key, every

    def resume(self, net, opt, sched, rng) -> int:
        """The step to start from (0 without a checkpoint), with the saved state loaded."""
        if self.path is None or not self.path.exists():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state["key"] != self.key:
            raise InputError(
                f"{self.path}: a checkpoint of another run ({state['key']}); "
                "remove it to start over"
            )
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        return state["step"]

    def save(self, step: int, net, opt, sched, rng) -> None:
        """Save after ``step`` steps when it is due (atomically: a kill keeps the last one)."""
        if self.path is None or step % self.every:
            return
        state = {
            "key": self.key, "step": step, "net": net.state_dict(), "opt": opt.state_dict(),
            "sched": sched.state_dict(), "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }  # fmt: skip
        buf = io.BytesIO()
        torch.save(state, buf)
        with atomic_output(self.path, force=True) as tmp:
            tmp.write_bytes(buf.getvalue())

    def done(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
