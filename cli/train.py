"""`vcodec train ...`: the commands that produce the shipped weights (models/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from vcodec.cli.main import Device, Force, err, out, reported_errors

train_app = typer.Typer(
    help="Train the learned stages on a folder of clips; prints each weights file's sha256.",
    no_args_is_help=True,
)

Data = Annotated[
    Path | None, typer.Option(help="Folder of training clips (videos, frame folders).")
]
Cache = Annotated[
    Path | None, typer.Option(help="Example cache (.npz): read if it exists, else written.")
]
Steps = Annotated[int, typer.Option(min=1, help="Optimiser steps.")]


def _step_bar(label: str, total: int):
    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        "loss {task.fields[loss]:.2f}", TimeRemainingColumn(), console=err,
    )  # fmt: skip
    task = bar.add_task(label, total=total, loss=float("nan"))
    return bar, lambda n, loss: bar.update(task, completed=n, loss=loss)


def _setup(out_path: Path, force: bool, device: str, data: Path | None, cache: Path | None):
    """(the torch device, the training examples) every command starts from; refuses an
    existing output before any training rather than after it."""
    from vcodec.encoder import resolve_device
    from vcodec.files import check_output
    from vcodec.train.common import examples_for

    check_output(out_path, force=force)
    dev = resolve_device(device)
    return dev, examples_for(data, cache, err.print)


def _report(what: str, path: Path, sha256: str) -> None:
    out.print(f"{what} -> {path}\nsha256 {sha256}", highlight=False)


@train_app.command("recon")
def recon(
    out_path: Annotated[Path, typer.Option("--out", help="Weights file to write.")] = Path(
        "recon.pt"
    ),
    data: Data = None,
    cache: Cache = None,
    masks: Annotated[
        Path | None, typer.Option(help="Train on these candidate masks (else random masks).")
    ] = None,
    init: Annotated[Path | None, typer.Option(help="Start from these weights.")] = None,
    steps: Steps = 1500,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Train the reconstruction network (samples + mask + prediction -> GOP)."""
    with reported_errors():
        from vcodec.models.reconstruction import ReconstructionNet
        from vcodec.train.common import load_weights, save_weights
        from vcodec.train.recon import ReconTrainConfig, train_recon

        dev, examples = _setup(out_path, force, device, data, cache)
        candidates = load_weights(masks) if masks else None
        start = load_weights(init, ReconstructionNet) if init else None
        bar, tick = _step_bar("recon", steps)
        with bar:
            net = train_recon(
                examples, ReconTrainConfig(steps=steps, lr=lr), candidates=candidates,
                init=start, device=dev, progress=tick,
            )  # fmt: skip
        _report("reconstruction network", out_path, save_weights(net, out_path, force=force))


@train_app.command("masks")
def masks(
    recon_path: Annotated[
        Path, typer.Option("--recon", help="Reconstruction weights in the loop.")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Candidate file to write.")] = Path(
        "masks.pt"
    ),
    data: Data = None,
    cache: Cache = None,
    steps: Steps = 150,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Optimise per-patch masks on the clips, then cluster them into K candidates."""
    with reported_errors():
        from vcodec.models.reconstruction import ReconstructionNet
        from vcodec.train.common import load_weights, save_weights
        from vcodec.train.masks import MaskTrainConfig, cluster_masks, optimise_masks

        dev, examples = _setup(out_path, force, device, data, cache)
        net = load_weights(recon_path, ReconstructionNet)
        config = MaskTrainConfig(steps=steps)
        bar, tick = _step_bar("masks", steps)
        with bar:
            optimised = optimise_masks(examples, net, config, device=dev, progress=tick)
        candidates = cluster_masks(optimised, config)
        dens = ", ".join(f"{d:.3f}" for d in candidates.flatten(1).float().mean(1).tolist())
        err.print(f"candidate densities: {dens}")
        _report("candidate masks", out_path, save_weights(candidates, out_path, force=force))


@train_app.command("selector")
def selector(
    recon_path: Annotated[Path, typer.Option("--recon", help="Reconstruction weights.")],
    masks_path: Annotated[Path, typer.Option("--masks", help="Candidate masks.")],
    out_path: Annotated[Path, typer.Option("--out", help="Weights file to write.")] = Path(
        "selector.pt"
    ),
    data: Data = None,
    cache: Cache = None,
    steps: Steps = 2000,
    label_crops: Annotated[
        int, typer.Option(min=1, help="Crops labelled by the exhaustive RD search.")
    ] = 768,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Train the mask-selection network on labels from an exhaustive RD search."""
    with reported_errors():
        from vcodec.models.reconstruction import ReconstructionNet
        from vcodec.train.common import load_weights, save_weights
        from vcodec.train.selector import SelectorTrainConfig, rd_labels, train_selector

        dev, examples = _setup(out_path, force, device, data, cache)
        net = load_weights(recon_path, ReconstructionNet)
        candidates = load_weights(masks_path)
        config = SelectorTrainConfig(steps=steps, label_crops=label_crops)
        bar, tick = _step_bar("RD labels", min(len(examples), config.label_crops))
        with bar:
            labelled = rd_labels(examples, net, candidates, config, device=dev, progress=tick)
        bar, tick = _step_bar("selector", steps)
        with bar:
            model = train_selector(labelled, len(candidates), config, dev, progress=tick)
        _report("mask selector", out_path, save_weights(model, out_path, force=force))
