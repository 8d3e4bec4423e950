"""`vcodec train ...`: the commands that produce the shipped weights (models/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from vcodec.cli.common import Device, Force, err, out, reported_errors

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


LOG_LINES = 10  # progress lines a training loop prints when stderr is a log, not a terminal


def _step_bar(label: str, total: int):
    """A rich bar of training steps and the callback that advances it; when stderr is not a
    terminal (a log), LOG_LINES plain lines instead."""
    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        "loss {task.fields[loss]:.2f}", TimeRemainingColumn(), console=err,
        disable=not err.is_terminal,
    )  # fmt: skip
    task = bar.add_task(label, total=total, loss=float("nan"))
    every = max(1, total // LOG_LINES)

    def tick(n: int, loss: float) -> None:
        bar.update(task, completed=n, loss=loss)
        if not err.is_terminal and (n % every == 0 or n == total):
            err.print(f"{label}: {n}/{total}, loss {loss:.4g}")

    return bar, tick


def _setup(out_path: Path, force: bool, device: str, data: Path | None, cache: Path | None, **kind):
    """(the torch device, the training examples) every command starts from; refuses an
    existing output before any training rather than after it. ``kind``: examples_for's."""
    from vcodec.device import resolve_device
    from vcodec.files import check_output
    from vcodec.train.common import examples_for

    check_output(out_path, force=force)
    dev = resolve_device(device)
    return dev, examples_for(data, cache, err.print, **kind)


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
    random_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="With --masks: share of crops under random masks."),
    ] = 0.0,
    same_share: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="With --masks: share of the other crops with one candidate."
        ),
    ] = 0.0,
    init: Annotated[Path | None, typer.Option(help="Start from these weights.")] = None,
    model: Annotated[
        str,
        typer.Option(
            help="The network: recon-v1 (box fills, 60k parameters) or recon-v2 (push-pull "
            "fills over 0-8 frames blended per pixel, 193k)."
        ),
    ] = "recon-v1",
    steps: Steps = 1500,
    batch: Annotated[int, typer.Option(min=1, help="Crops per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Train the reconstruction network (samples + mask + prediction -> GOP)."""
    with reported_errors():
        from vcodec.errors import InputError
        from vcodec.models.reconstruction import ReconstructionNet, ReconstructionNetV2
        from vcodec.train.common import Checkpoint, load_weights, save_weights
        from vcodec.train.recon import ReconTrainConfig, train_recon

        nets = {"recon-v1": ReconstructionNet, "recon-v2": ReconstructionNetV2}
        if model not in nets:
            raise InputError(f"--model must be one of {', '.join(nets)}, got {model!r}")
        dev, examples = _setup(out_path, force, device, data, cache)
        candidates = load_weights(masks) if masks else None
        start = load_weights(init, nets[model]) if init else nets[model]()
        train = ReconTrainConfig(
            steps=steps, batch=batch, lr=lr, random_share=random_share, same_share=same_share
        )
        # a killed run resumes from OUT.ckpt (saved every 2,000 steps) when rerun as it was
        key = {"model": model, "steps": steps, "batch": batch, "lr": lr, "init": str(init),
               "masks": str(masks), "random_share": random_share,
               "same_share": same_share}  # fmt: skip
        checkpoint = Checkpoint(out_path.with_name(out_path.name + ".ckpt"), key)
        bar, tick = _step_bar("recon", steps)
        with bar:
            net = train_recon(
                examples, train, candidates=candidates, init=start, device=dev,
                progress=tick, checkpoint=checkpoint,
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
        from vcodec.train.common import save_weights
        from vcodec.train.masks import MaskTrainConfig, cluster_masks, optimise_masks
        from vcodec.train.recon import load_recon

        dev, examples = _setup(out_path, force, device, data, cache)
        net = load_recon(recon_path)
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
        from vcodec.train.common import load_weights, save_weights
        from vcodec.train.recon import load_recon
        from vcodec.train.selector import SelectorTrainConfig, rd_labels, train_selector

        dev, examples = _setup(out_path, force, device, data, cache)
        net = load_recon(recon_path)
        candidates = load_weights(masks_path)
        config = SelectorTrainConfig(steps=steps, label_crops=label_crops)
        bar, tick = _step_bar("RD labels", min(len(examples), config.label_crops))
        with bar:
            labelled = rd_labels(examples, net, candidates, config, device=dev, progress=tick)
        bar, tick = _step_bar("selector", steps)
        with bar:
            model = train_selector(labelled, len(candidates), config, dev, progress=tick)
        _report("mask selector", out_path, save_weights(model, out_path, force=force))


@train_app.command("post")
def post(
    out_path: Annotated[Path, typer.Option("--out", help="Weights file to write.")] = Path(
        "post.pt"
    ),
    data: Data = None,
    cache: Cache = None,
    frames: Annotated[int, typer.Option(min=3, help="Frames read from each clip.")] = 480,
    base: Annotated[str, typer.Option(help="The base layer's codec the examples go through.")] = (
        "x265"
    ),
    init: Annotated[Path | None, typer.Option(help="Start from these weights.")] = None,
    model: Annotated[
        str,
        typer.Option(
            help="The network: post-v1 (PostNet, ~5,200 multiply-adds a luma pixel) or post-v2 "
            "(LitePostNet, ~440: inside the decode budget)."
        ),
    ] = "post-v1",
    steps: Steps = 20000,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    task_detector: Annotated[
        str | None,
        typer.Option(
            help="Task-driven training: onnx-nanodet:PATH (nanodet-m_416.onnx), whose FPN "
            "features on the output are pulled towards those on the original."
        ),
    ] = None,
    task_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the detector-feature loss beside the MSE.")
    ] = 5000.0,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Train the post-processing network (upscaled base layer -> frames, per QP and scale).

    Examples: each clip through vcodec's own base layer (--base) at --qp 22-47 (and at scale 2
    from 32 up); progress shows the batch's MSE gain over the plain base layer (levels^2).
    """
    with reported_errors():
        from vcodec.errors import InputError
        from vcodec.models.postprocess import LitePostNet, PostNet
        from vcodec.train.common import Checkpoint, load_weights, save_weights
        from vcodec.train.post import (
            PostDataConfig,
            PostExamples,
            PostTrainConfig,
            build_post_examples,
            train_post,
        )  # fmt: skip

        feature_loss = None
        if task_detector is not None:
            from vcodec.train.task import FeatureLoss

            kind, _, path = task_detector.partition(":")
            if kind != "onnx-nanodet" or not path:
                raise InputError("--task-detector must be onnx-nanodet:PATH")
            feature_loss = FeatureLoss(path)
        config = PostDataConfig(frames=frames, base=base)
        dev, examples = _setup(
            out_path, force, device, data, cache, kind=PostExamples,
            build=lambda d, progress: build_post_examples(d, config, progress),
        )  # fmt: skip
        nets = {"post-v1": PostNet, "post-v2": LitePostNet}
        if model not in nets:
            raise InputError(f"--model must be one of {', '.join(nets)}, got {model!r}")
        start = load_weights(init, nets[model]) if init else nets[model]()
        train = PostTrainConfig(steps=steps, lr=lr, task_weight=task_weight if feature_loss else 0)
        # a killed run resumes from OUT.ckpt (saved every 2,000 steps) when rerun as it was
        key = {"model": model, "steps": steps, "lr": lr, "task_weight": train.task_weight,
               "init": str(init)}  # fmt: skip
        checkpoint = Checkpoint(out_path.with_name(out_path.name + ".ckpt"), key)
        bar, tick = _step_bar("post", steps)
        with bar:
            net = train_post(
                examples, train, init=start, device=dev, progress=tick,
                task_loss=feature_loss.to(dev) if feature_loss else None, checkpoint=checkpoint,
            )  # fmt: skip
        _report("post-processing network", out_path, save_weights(net, out_path, force=force))


@train_app.command("predict")
def predict(
    out_path: Annotated[Path, typer.Option("--out", help="Weights file to write.")] = Path(
        "predict.pt"
    ),
    data: Data = None,
    cache: Cache = None,
    frames: Annotated[int, typer.Option(min=3, help="Frames read from each clip.")] = 480,
    steps: Steps = 20000,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Train the frame-prediction network of temporal scaling (decoded frames t - 1 and t + 1
    -> frame t, per QP and scale).

    Examples: the same as `train post` (its --cache can be shared); progress shows the batch's
    MSE gain over the plain mean of the two neighbours (levels^2).
    """
    with reported_errors():
        from vcodec.train.common import save_weights
        from vcodec.train.post import (
            PostDataConfig,
            PostExamples,
            PostTrainConfig,
            build_post_examples,
        )
        from vcodec.train.predict import train_predict

        config = PostDataConfig(frames=frames)
        dev, examples = _setup(
            out_path, force, device, data, cache, kind=PostExamples,
            build=lambda d, progress: build_post_examples(d, config, progress),
        )  # fmt: skip
        bar, tick = _step_bar("predict", steps)
        with bar:
            net = train_predict(
                examples, PostTrainConfig(steps=steps, lr=lr), device=dev, progress=tick
            )
        _report("frame-prediction network", out_path, save_weights(net, out_path, force=force))


@train_app.command("params")
def params(
    out_path: Annotated[Path, typer.Option("--out", help="Weights file to write.")] = Path(
        "params.pt"
    ),
    data: Data = None,
    cache: Annotated[
        Path | None, typer.Option(help="RD database (.npz): read if it exists, else written.")
    ] = None,
    frames: Annotated[int, typer.Option(min=16, help="Frames of each coded window.")] = 64,
    window_stride: Annotated[
        int,
        typer.Option(
            min=0,
            help="Frames between the starts of a clip's windows (each coded as a stream of its "
            "own, while the clip lasts); 0: the first window alone.",
        ),
    ] = 320,
    steps: Steps = 5000,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Train the parameter module (GOP features -> scale) on an RD database.

    The database codes windows of --frames frames of each clip as one stream at --qp 22-50, at
    scale 1 and 2, with the shipped post-processing network; the best scale at a QP is the one
    whose point lies above the other scale's RD curve. Progress shows the weighted
    cross-entropy of that choice.
    """
    with reported_errors():
        import torch

        from vcodec.train.common import save_weights
        from vcodec.train.params import (
            ParamsDatabase,
            ParamsDataConfig,
            ParamsTrainConfig,
            build_params_database,
            choice_report,
            train_params,
        )  # fmt: skip

        config = ParamsDataConfig(frames=frames, window_stride=window_stride)
        dev, db = _setup(
            out_path, force, device, data, cache, kind=ParamsDatabase,
            build=lambda d, progress: build_params_database(d, config, progress),
        )  # fmt: skip
        bar, tick = _step_bar("params", steps)
        with bar:
            net = train_params(db, ParamsTrainConfig(steps=steps), dev, progress=tick)
        with torch.no_grad():
            choice = net(torch.from_numpy(db.features).float().to(dev)).argmax(1).cpu().numpy()
        report = choice_report(db, choice)
        err.print(
            f"on its {len(db)} training rows: same choice as the search on "
            f"{report['agree_pct']:.0f} %, PSNR-YUV given away at equal rate "
            f"{report['mean_db']:.3f} dB mean, {report['worst_db']:.3f} dB worst"
        )
        _report("parameter module", out_path, save_weights(net, out_path, force=force))
