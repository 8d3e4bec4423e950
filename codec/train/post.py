"""`vcodec train post`: the post-processing network, on real clips through vcodec's base layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vcodec.frames import GOP_SIZE, PSNR_YUV_WEIGHTS, Gop
from vcodec.io import open_video
from vcodec.models.postprocess import NEIGHBOURS, PostNet, condition
from vcodec.stages.scale import base_qp
from vcodec.train.common import Checkpoint
from vcodec.train.data import CPU, ArraySet, base_layer, find_clips


@dataclass(frozen=True)
class PostDataConfig:
    """What to cut from each clip: crops of NEIGHBOURS frames at each (QP, scale)."""

    frames: int = 480  # frames read from the start of each clip
    crop: int = 64  # luma crop side (a multiple of 4); chroma is half
    crops_per_gop: int = 16  # crops per GOP and (QP, scale)
    qps: tuple[int, ...] = (22, 27, 32, 37, 42, 47)  # the --qp values the base layer is made at
    scale2_min_qp: int = 32  # scale 2 is also made from this --qp up
    base: str = "x265"  # the base layer's codec
    seed: int = 0


@dataclass
class PostExamples(ArraySet):
    """Base-layer crops and their originals, 8-bit.

    py: [N, 3, S, S]; pu, pv: [N, 3, S/2, S/2] (previous, middle, next frame of the upscaled base
    layer); xy: [N, S, S]; xu, xv: [N, S/2, S/2] (the middle original); qp: [N] the base layer's
    QP; scale: [N].
    """

    py: np.ndarray
    pu: np.ndarray
    pv: np.ndarray
    xy: np.ndarray
    xu: np.ndarray
    xv: np.ndarray
    qp: np.ndarray
    scale: np.ndarray


def build_post_examples(
    data: str | Path,
    config: PostDataConfig = PostDataConfig(),
    progress: Callable[[str], None] = print,
) -> PostExamples:
    """Crops of every clip in ``data`` at every (QP, scale) of ``config``."""
    rng = np.random.default_rng(config.seed)
    parts: list[tuple] = []
    for clip in find_clips(data):
        with open_video(clip) as reader:
            gops = list(reader.gops(GOP_SIZE, config.frames))
        gops = [
            g for g in gops if g.n_frames >= NEIGHBOURS and min(g.u.shape[1:]) >= config.crop // 2
        ]
        if not gops:
            progress(f"skipped {clip.name}: too small or too short")
            continue
        for qp in config.qps:
            for scale in (1, 2) if qp >= config.scale2_min_qp else (1,):
                coded = base_layer(gops, reader.info, qp, str(scale), base=config.base)
                for gop, pred in zip(gops, coded, strict=True):
                    for _ in range(config.crops_per_gop):
                        parts.append(_crop(gop, pred, base_qp(qp, scale), scale, config.crop, rng))
        progress(f"{clip.name}: {len(gops)} GOPs, {len(parts)} crops so far")
    fields = zip(*parts, strict=True)
    return PostExamples(*(np.stack(f) for f in fields))


def _crop(gop: Gop, pred: Gop, qp: int, scale: int, s: int, rng) -> tuple:
    """One crop: the middle frame t of the GOP with its neighbours, edge-replicated as the
    decoder replicates them at GOP ends."""
    t = int(rng.integers(0, gop.n_frames))
    frames = np.clip(np.arange(t - 1, t + 2), 0, gop.n_frames - 1)
    top = 2 * int(rng.integers(0, (gop.height - s) // 2 + 1))
    left = 2 * int(rng.integers(0, (gop.width - s) // 2 + 1))
    ys, xs = slice(top, top + s), slice(left, left + s)
    cs, cx = slice(top // 2, top // 2 + s // 2), slice(left // 2, left // 2 + s // 2)
    return (  # copies (fancy indexing after the slice), so no crop holds on to a whole GOP
        pred.y[:, ys, xs][frames],
        pred.u[:, cs, cx][frames],
        pred.v[:, cs, cx][frames],
        gop.y[t, ys, xs].copy(),
        gop.u[t, cs, cx].copy(),
        gop.v[t, cs, cx].copy(),
        qp,
        scale,
    )


@dataclass(frozen=True)
class PostTrainConfig:
    steps: int = 20000
    batch: int = 16
    lr: float = 1e-3
    # task-driven training (seed 003): this weight on a detector-feature loss (train/task.py),
    # added to the MSE; 0: off
    task_weight: float = 0.0
    seed: int = 0


def _batch(ex: PostExamples, idx: np.ndarray, rng, device: torch.device) -> tuple:
    """Tensors for the examples ``idx``, each flipped at random (left-right, up-down)."""
    planes = [
        torch.from_numpy(getattr(ex, k)[idx]).float() for k in ("py", "pu", "pv", "xy", "xu", "xv")
    ]
    for dim in (-1, -2):
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        planes = [torch.where(flip.view(-1, *[1] * (p.dim() - 1)), p.flip(dim), p) for p in planes]
    cond = torch.stack(
        [condition(int(q), int(s)) for q, s in zip(ex.qp[idx], ex.scale[idx], strict=True)]
    )
    return tuple(p.to(device) for p in (*planes, cond))


def weighted_mse(out: tuple, target: tuple) -> torch.Tensor:
    """PSNR-YUV's weighting of the three planes' MSE, in 8-bit levels squared."""
    return sum(
        w * (o - t).square().mean() for w, o, t in zip(PSNR_YUV_WEIGHTS, out, target, strict=True)
    )


def train_post(
    examples: PostExamples,
    config: PostTrainConfig = PostTrainConfig(),
    *,
    init: nn.Module | None = None,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
    window: Callable[[torch.Tensor], torch.Tensor] | None = None,
    task_loss: Callable[[tuple, tuple], torch.Tensor] | None = None,
    checkpoint: Checkpoint | None = None,
) -> nn.Module:
    """Train (or fine-tune) ``init``, a PostNet or a LitePostNet (a fresh PostNet without it),
    to minimise PSNR-YUV-weighted MSE, plus ``config.task_weight`` times ``task_loss(out,
    target)`` where given (both (y, u, v) batches); progress gets the step and the batch's
    gain in MSE over the network's middle input frame (levels^2). ``window``: what becomes of
    each plane's [B, 3, H, W] frames before the network (the frame predictor's training
    replaces the middle one, train/predict.py). ``checkpoint``: resume from it and save to it."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = (init or PostNet()).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    mid = NEIGHBOURS // 2
    checkpoint = checkpoint or Checkpoint(None, {})
    for step in range(checkpoint.resume(net, opt, sched, rng), config.steps):
        py, pu, pv, xy, xu, xv, cond = _batch(
            examples, rng.integers(0, len(examples), config.batch), rng, device
        )
        if window is not None:
            py, pu, pv = (window(p) for p in (py, pu, pv))
        out = net(py, pu, pv, cond)
        mse = loss = weighted_mse(out, (xy, xu, xv))
        if task_loss is not None and config.task_weight:
            loss = mse + config.task_weight * task_loss(out, (xy, xu, xv))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            with torch.no_grad():
                before = weighted_mse((py[:, mid], pu[:, mid], pv[:, mid]), (xy, xu, xv))
            progress(step + 1, (before - mse).item())
        checkpoint.save(step + 1, net, opt, sched, rng)
    checkpoint.done()
    return net.eval()
